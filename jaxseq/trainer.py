"""The training loop: data, model, steps, evaluation and what a run leaves behind."""

import contextlib
import functools
import json
import os
import signal
import time

import jax
import numpy as np
from tqdm import tqdm

from jaxseq import averaging, checkpointing, configuration, data, early_stopping, evaluation
from jaxseq import input_pipeline
from jaxseq import metrics_writer
from jaxseq import model as model_lib
from jaxseq import parallel, plots, preemption, steps, vocab

STEP_LOG = "steps.jsonl"  # per-step losses when config.step_log is on


class TrainingStopped(RuntimeError):
  """The run cannot go on (e.g. too many non-finite steps in a row)."""


class TrainingInterrupted(RuntimeError):
  """A stop signal arrived; the state after the last step was saved and can be resumed."""


def _log(message: str):
  tqdm.write(message)


def _jit_train_step(model, config, mesh):
  step = functools.partial(steps.train_step, model=model,
                           teacher_forcing_ratio=config.teacher_forcing_ratio,
                           label_smoothing=config.label_smoothing,
                           nan_steps=configuration.fault_nan_steps(config), mesh=mesh)
  return jax.jit(step, in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                 out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                 donate_argnums=0)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains config's model, evaluates it, writes the workdir; returns the summary."""
  parallel.initialize_distributed(config)  # before anything touches a device
  configuration.validate(config, num_devices=jax.device_count(),
                         datasets=tuple(data.LOADERS))
  checkpointing.prepare_workdir(workdir)
  resuming = checkpointing.has_checkpoints(workdir)
  if resuming:
    checkpointing.check_same_run(workdir, config)
  started = time.time()
  max_length = config.model.max_length

  corpus = data.load_corpus(config, workdir)
  corpus.src_vocab, corpus.tgt_vocab = _tokenizers(workdir, corpus, resuming)
  train_examples, dropped = input_pipeline.encode_pairs(
      corpus.train, corpus.src_vocab, corpus.tgt_vocab, max_length)
  eval_examples, eval_kept = input_pipeline.encode_indexed(
      corpus.eval, corpus.src_vocab, corpus.tgt_vocab, max_length)
  eval_dropped = len(corpus.eval) - len(eval_kept)
  _log(f"data: {len(train_examples)} training pairs ({dropped} longer than "
       f"model.max_length={max_length} dropped), {len(eval_examples)} held-out "
       f"({eval_dropped} dropped); vocab {len(corpus.src_vocab)} -> {len(corpus.tgt_vocab)}")
  checkpointing.save_config(workdir, config)

  model = model_lib.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
  mesh = parallel.make_mesh()
  state = parallel.init_replicated(lambda: steps.create_train_state(
      model, config, jax.random.fold_in(jax.random.key(config.seed), 1)), mesh)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  _log(f"model: {config.model.cell} {config.model.attention}, {num_params:,} parameters, "
       f"{jax.device_count()} {jax.devices()[0].platform} device(s)")

  batches = input_pipeline.TrainIterator(train_examples, config.batch_size, max_length,
                                        seed=config.seed)
  manager = checkpointing.make_manager(workdir, config)
  writer = metrics_writer.MetricsWriter(workdir)
  try:
    restored = checkpointing.restore_latest(manager, state, workdir, log=_log)
    if restored is not None:
      state = restored.state
      batches.set_state(restored.data_state)
      _log(f"resumed from step {restored.step} in {manager.directory}")
    state, history, train_seconds, total_tokens = _train_loop(
        config, workdir, model, state, batches, corpus, eval_examples, manager, writer,
        _jit_train_step(model, config, mesh), mesh)
    checkpointing.wait(manager)
    summary = _final_evaluation(config, workdir, model, state.params, corpus, eval_examples,
                                history, writer, int(state.step))
    summary["stopped_early"] = history["stopped_early"]
    if config.get("average_last_checkpoints", 0):
      summary["averaged"] = _evaluate_average(config, workdir, model, state, corpus,
                                              eval_examples, manager)
  finally:
    writer.close()
    with contextlib.suppress(Exception):  # the error that got us here is the one to report
      manager.close()

  summary.update(
      steps=int(state.step), wall_seconds=time.time() - started,
      train_seconds=train_seconds,
      tokens_per_second=total_tokens / max(train_seconds, 1e-9),
      num_parameters=int(num_params), skipped_steps=int(state.opt_state.total_notfinite),
      devices=[str(d) for d in jax.devices()], config=config.to_dict())
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, default=str)
  _log(f"wrote {os.path.join(workdir, 'summary.json')}")
  return summary


def _tokenizers(workdir: str, corpus, resuming: bool):
  """A new run saves the corpus' tokenizers; a resumed one reads the saved ones back."""
  if not resuming:
    vocab.save_tokenizers(workdir, corpus.src_vocab, corpus.tgt_vocab)
    return corpus.src_vocab, corpus.tgt_vocab
  try:
    saved = vocab.load_tokenizers(workdir)
  except (OSError, ValueError, KeyError) as e:
    raise checkpointing.CheckpointError(
        f"the tokenizers saved in {workdir!r} cannot be read: {e}") from None
  for side, name, old, new in (("source", vocab.SRC_FILE, saved[0], corpus.src_vocab),
                               ("target", vocab.TGT_FILE, saved[1], corpus.tgt_vocab)):
    checkpointing.check_same_vocab(side, os.path.join(workdir, name), old.words, new.words)
  return saved


def _heldout_bleu(config, model, params, corpus, search: str, progress=None):
  """BLEU and chrF of the held-out split, every sentence, against all its references."""
  return evaluation.evaluate_split(
      model, params, corpus.eval, corpus.src_vocab, corpus.tgt_vocab,
      batch_size=config.batch_size, max_length=config.model.max_length, search=search,
      settings=evaluation.decode_settings(config), references=corpus.eval_references,
      exact_match=corpus.exact_match, progress=progress)


def _train_loop(config, workdir, model, state, batches, corpus, eval_examples, manager,
                writer, train_step, mesh):
  """Steps from state.step to config.num_train_steps; saves, evaluates, obeys signals.

  The metrics of a step are read once the next step is queued (all of them at log,
  eval and checkpoint steps), so the device does not wait for the host, yet every
  step's non-finite count is seen before anything after it is saved.
  """
  max_length = config.model.max_length
  first_step = int(state.step)
  history = {"train": ([], []), "heldout": ([], []), "bleu": ([], []), "stopped_early": False}
  stopping = early_stopping.EarlyStopping(config.get("early_stopping_patience", 0))
  window_tokens, window_start = 0, time.time()
  total_tokens, train_seconds = 0, 0.0
  pending = []  # (step number, device metrics) not read yet
  step_log = open(os.path.join(workdir, STEP_LOG), "a") if config.step_log else None
  bar = tqdm(range(first_step, config.num_train_steps), desc="train", unit="step",
             dynamic_ncols=True, initial=first_step, total=config.num_train_steps)

  def read(records) -> float:
    loss = float("nan")
    for number, metrics in records:
      metrics = jax.device_get(metrics)
      loss = float(metrics["loss"]) / max(float(metrics["tokens"]), 1.0)
      in_a_row = int(metrics["skipped"])
      if step_log:
        step_log.write(json.dumps({"step": number, "loss": loss, "skipped": in_a_row > 0}) + "\n")
        step_log.flush()
      if in_a_row:
        _log(f"step {number}: non-finite loss or gradient, update skipped "
             f"({in_a_row} in a row, config.max_bad_steps={config.max_bad_steps})")
      if in_a_row >= config.max_bad_steps:
        raise TrainingStopped(
            f"{in_a_row} non-finite steps in a row up to step {number} "
            f"(config.max_bad_steps={config.max_bad_steps}); nothing after them was saved, "
            f"the checkpoints of steps {manager.all_steps()} hold finite parameters")
    return loss

  with preemption.catch_stop_signals() as stop, contextlib.ExitStack() as closing:
    closing.callback(bar.close)
    if step_log:
      closing.callback(step_log.close)
    for step in bar:
      number = step + 1
      host_batch = next(batches)
      window_tokens += int(np.count_nonzero(host_batch["tgt_out"]))
      state, metrics = train_step(state, parallel.shard_batch(host_batch, mesh))
      pending.append((number, metrics))
      last = number == config.num_train_steps
      is_log = number % config.log_every_steps == 0 or last
      is_eval = number % config.eval_every_steps == 0 and not last
      is_save = number % config.checkpoint_every_steps == 0 or is_eval or last
      if is_log or is_save or stop.signal_name:
        loss = read(pending)  # waits for the step, so the window is timed honestly
        pending = []
      else:
        read(pending[:-1])
        pending = pending[-1:]
      if is_log:
        elapsed = time.time() - window_start
        total_tokens += window_tokens
        train_seconds += elapsed
        history["train"][0].append(number)
        history["train"][1].append(loss)
        writer.scalars(number, {"loss": loss,
                                "tokens_per_second": window_tokens / max(elapsed, 1e-9)}, "train")
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{window_tokens / max(elapsed, 1e-9):,.0f}")
        window_tokens, window_start = 0, time.time()
      save_metrics = None
      if is_eval:
        held = evaluation.heldout_loss(model, state.params, eval_examples, config.batch_size,
                                       max_length)
        history["heldout"][0].append(number)
        history["heldout"][1].append(held["loss"])
        search = evaluation.decode_settings(config)["eval_search"]
        held.update(_heldout_bleu(config, model, state.params, corpus, search).metrics)
        history["bleu"][0].append(number)
        history["bleu"][1].append(held["bleu"])
        writer.scalars(number, held, "heldout")
        _log(f"step {number}: held-out loss {held['loss']:.4f}, "
             f"token accuracy {held['token_accuracy']:.4f}, BLEU ({search}) {held['bleu']:.2f}")
        if step_log:
          step_log.write(json.dumps({"step": number, "heldout_loss": held["loss"]}) + "\n")
        save_metrics = {"heldout_loss": held["loss"], "bleu": held["bleu"]}
        state = _observe_plateau(config, state, held["loss"], mesh, number)
        history["stopped_early"] = stopping.update(number, held["bleu"])
        window_start = time.time()  # evaluation time is not training time
      if is_save:
        checkpointing.save(manager, state, batches.get_state(), metrics=save_metrics, force=True)
      if history["stopped_early"]:
        _log(f"early stopping at step {number}: held-out BLEU has not improved on "
             f"{stopping.best:.2f} (step {stopping.best_step}) for {stopping.since_best} "
             f"evaluations (config.early_stopping_patience={stopping.patience})")
        break
      if config.fault_signal and number == config.fault_signal_step:
        os.kill(os.getpid(), signal.Signals["SIG" + config.fault_signal])
      if stop.signal_name and not last:
        read(pending)
        if not is_save:
          checkpointing.save(manager, state, batches.get_state(), force=True)
        checkpointing.wait(manager)
        raise TrainingInterrupted(
            f"stopped by {stop.signal_name} after step {number}; the checkpoint is in "
            f"{manager.directory}/{number}; run the same command (same --workdir) to resume")
  return state, history, train_seconds, total_tokens


def _observe_plateau(config, state, heldout_loss: float, mesh, step: int):
  """Feeds the held-out loss to reduce-on-plateau (when on) and logs a changed rate."""
  before = steps.plateau_scale(state)
  if before is None:
    return state
  state = steps.observe_heldout_loss(state, heldout_loss, config)
  after = steps.plateau_scale(state)
  if after != before:
    _log(f"step {step}: held-out loss stalled; learning rate factor {before:g} -> {after:g}")
  return jax.device_put(state, parallel.replicated(mesh))


def _evaluate_average(config, workdir, model, state, corpus, eval_examples, manager) -> dict:
  """Held-out and test scores of the mean params of the newest checkpoints."""
  used, params = averaging.average_last(manager, config.average_last_checkpoints, state)
  held = evaluation.heldout_loss(model, params, eval_examples, config.batch_size,
                                 config.model.max_length)
  result = _heldout_bleu(config, model, params, corpus, "beam", progress="eval averaged")
  references = corpus.eval_references or [[t] for _, t in corpus.eval]
  files = evaluation.write_outputs(workdir, "heldout_averaged", result.hypotheses, references)
  report = {"steps": used, "heldout": {**held, **result.metrics, "files": files}, "test": {}}
  _log(f"averaged params of steps {used}: held-out loss {held['loss']:.4f}, "
       f"BLEU {result.metrics['bleu']:.2f}")
  for name, pairs in corpus.test.items():
    report["test"][name] = _test_scores(config, model, params, corpus, pairs, workdir,
                                        f"test_{name}_averaged")
  return report


def _test_scores(config, model, params, corpus, pairs, workdir, file_name) -> dict:
  """Loss, perplexity, BLEU and chrF (beam search) of one test split; writes its texts."""
  max_length = config.model.max_length
  examples, _ = input_pipeline.encode_pairs(pairs, corpus.src_vocab, corpus.tgt_vocab,
                                            max_length)
  test = evaluation.evaluate_split(
      model, params, pairs, corpus.src_vocab, corpus.tgt_vocab,
      batch_size=config.batch_size, max_length=max_length, search="beam",
      settings=evaluation.decode_settings(config), exact_match=corpus.exact_match,
      progress=f"eval {file_name}")
  loss = evaluation.heldout_loss(model, params, examples, config.batch_size, max_length)
  files = evaluation.write_outputs(workdir, file_name, test.hypotheses, [[t] for _, t in pairs])
  return {**loss, **test.metrics, "files": files}


def _final_evaluation(config, workdir, model, params, corpus, eval_examples, history,
                      writer, step) -> dict:
  """Loss, perplexity, BLEU and chrF (beam search) of the held-out and test splits.

  Writes NAME.hyp.txt / NAME.ref*.txt per split (what the scores were computed on),
  the attention and curve PNGs, and TensorBoard scalars and images.
  """
  max_length = config.model.max_length
  # The periodic evaluations of training, before the final one below is added.
  curve = {"search": evaluation.decode_settings(config)["eval_search"],
           "steps": list(history["bleu"][0]), "bleu": list(history["bleu"][1]),
           "loss": list(history["heldout"][1])}
  held = evaluation.heldout_loss(model, params, eval_examples, config.batch_size, max_length)
  history["heldout"][0].append(step)
  history["heldout"][1].append(held["loss"])
  result = _heldout_bleu(config, model, params, corpus, "beam", progress="eval heldout")
  references = corpus.eval_references or [[t] for _, t in corpus.eval]
  files = evaluation.write_outputs(workdir, "heldout", result.hypotheses, references)
  report = {**held, **result.metrics, "files": files}
  history["bleu"][0].append(step)
  history["bleu"][1].append(result.metrics["bleu"])
  _log(f"held-out ({len(corpus.eval)} sentences): " + ", ".join(
      f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float)))
  _log(f"  {result.metrics['bleu_signature']}")
  summary = {"heldout": report, "test": {}, "heldout_curve": curve}

  _log("sample translations (held-out):")
  for (src, ref), hyp in list(zip(corpus.eval, result.hypotheses))[:config.num_samples]:
    mark = "=" if hyp == ref else "x"
    _log(f"  > {src}\n  = {ref}\n  {mark} {hyp}")
  for i in range(min(config.num_attention_plots, len(corpus.eval))):
    # one label per token: subword pieces for SentencePiece, words for word vocabularies
    src_ids = corpus.src_vocab.encode(corpus.eval[i][0])[:max_length]
    src_words = [corpus.src_vocab.decode([t]) for t in src_ids]
    out_ids = corpus.tgt_vocab.encode(result.hypotheses[i])
    out_words = ([corpus.tgt_vocab.decode([t]) for t in out_ids] + ["</s>"])[
        :len(result.attentions[i])]
    plots.save_attention(os.path.join(workdir, f"attention_{i}.png"),
                         result.attentions[i], src_words, out_words)
    writer.attention(step, f"attention/{i}", result.attentions[i], src_words, out_words)

  for name, pairs in corpus.test.items():
    summary["test"][name] = _test_scores(config, model, params, corpus, pairs, workdir,
                                         f"test_{name}")
    writer.scalars(step, summary["test"][name], f"test_{name}")
    _log(f"test {name} ({len(pairs)} sentences): BLEU {summary['test'][name]['bleu']:.2f}, "
         f"chrF {summary['test'][name]['chrf']:.2f}")

  writer.scalars(step, report, "heldout_final")
  plots.save_curves(os.path.join(workdir, "loss.png"),
                    {"train": history["train"], "held-out": history["heldout"]})
  plots.save_curves(os.path.join(workdir, "bleu.png"), {"held-out": history["bleu"]},
                    ylabel="BLEU", log_scale=False)
  with open(os.path.join(workdir, "translations.txt"), "w", encoding="utf-8") as f:
    f.writelines(h + "\n" for h in result.hypotheses)
  return summary
