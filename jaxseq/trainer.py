"""The training loop: data, model, steps, evaluation and what a run leaves behind."""

import functools
import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from jaxseq import checkpointing, configuration, data, evaluation, input_pipeline
from jaxseq import metrics_writer
from jaxseq import model as model_lib
from jaxseq import parallel, plots, steps, vocab


class TrainingStopped(RuntimeError):
  """The run cannot go on (e.g. too many non-finite steps in a row)."""


def _log(message: str):
  tqdm.write(message)


def _jit_train_step(model, config, mesh):
  step = functools.partial(steps.train_step, model=model,
                           teacher_forcing_ratio=config.teacher_forcing_ratio,
                           label_smoothing=config.label_smoothing)
  return jax.jit(step, in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                 out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                 donate_argnums=0)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains config's model, evaluates it, writes the workdir; returns the summary."""
  configuration.validate(config, num_devices=jax.device_count(),
                         datasets=tuple(data.LOADERS))
  os.makedirs(workdir, exist_ok=True)
  started = time.time()
  max_length = config.model.max_length

  corpus = data.load_corpus(config)
  train_examples, dropped = input_pipeline.encode_pairs(
      corpus.train, corpus.src_vocab, corpus.tgt_vocab, max_length)
  eval_examples, eval_dropped = input_pipeline.encode_pairs(
      corpus.eval, corpus.src_vocab, corpus.tgt_vocab, max_length)
  _log(f"data: {len(train_examples)} training pairs ({dropped} longer than "
       f"model.max_length={max_length} dropped), {len(eval_examples)} held-out "
       f"({eval_dropped} dropped); vocab {len(corpus.src_vocab)} -> {len(corpus.tgt_vocab)}")
  vocab.save_tokenizers(workdir, corpus.src_vocab, corpus.tgt_vocab)
  checkpointing.save_config(workdir, config)

  model = model_lib.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
  mesh = parallel.make_mesh()
  root = jax.random.key(config.seed)
  state = steps.create_train_state(model, config, jax.random.fold_in(root, 1))
  state = jax.device_put(state, parallel.replicated(mesh))
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  _log(f"model: {config.model.cell} {config.model.attention}, {num_params:,} parameters, "
       f"{jax.device_count()} {jax.devices()[0].platform} device(s)")

  batches = input_pipeline.TrainIterator(train_examples, config.batch_size, max_length,
                                        seed=config.seed)
  manager = checkpointing.make_manager(workdir, config)
  restored = checkpointing.restore_latest(manager, state)
  if restored is not None:
    state, data_state = restored
    batches.set_state(data_state)
    _log(f"resumed from step {int(state.step)} in {manager.directory}")
  first_step = int(state.step)

  train_step = _jit_train_step(model, config, mesh)
  history = {"train": ([], []), "heldout": ([], []), "bleu": ([], [])}
  writer = metrics_writer.MetricsWriter(workdir)
  window_tokens, window_start = 0, time.time()
  total_tokens, train_seconds = 0, 0.0
  bar = tqdm(range(first_step, config.num_train_steps), desc="train", unit="step",
             dynamic_ncols=True, initial=first_step, total=config.num_train_steps)
  for step in bar:
    host_batch = next(batches)
    window_tokens += int(np.count_nonzero(host_batch["tgt_out"]))
    state, metrics = train_step(state, parallel.shard_batch(host_batch, mesh))
    last = step + 1 == config.num_train_steps
    if (step + 1) % config.log_every_steps == 0 or last:
      metrics = jax.device_get(metrics)  # waits for the step, so the window is timed honestly
      elapsed = time.time() - window_start
      total_tokens += window_tokens
      train_seconds += elapsed
      loss = float(metrics["loss"]) / max(float(metrics["tokens"]), 1.0)
      history["train"][0].append(step + 1)
      history["train"][1].append(loss)
      writer.scalars(step + 1, {"loss": loss, "grad_norm": float(metrics["grad_norm"]),
                                "tokens_per_second": window_tokens / max(elapsed, 1e-9)}, "train")
      bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{window_tokens / max(elapsed, 1e-9):,.0f}")
      if int(metrics["skipped"]) >= config.max_bad_steps:
        raise TrainingStopped(
            f"{int(metrics['skipped'])} non-finite steps in a row (config.max_bad_steps="
            f"{config.max_bad_steps}); the last finite parameters were kept")
      window_tokens, window_start = 0, time.time()
    if (step + 1) % config.eval_every_steps == 0 and not last:
      held = evaluation.heldout_loss(model, state.params, eval_examples, config.batch_size,
                                     max_length)
      history["heldout"][0].append(step + 1)
      history["heldout"][1].append(held["loss"])
      search = evaluation.decode_settings(config)["eval_search"]
      held.update(_heldout_bleu(config, model, state.params, corpus, search).metrics)
      history["bleu"][0].append(step + 1)
      history["bleu"][1].append(held["bleu"])
      writer.scalars(step + 1, held, "heldout")
      _log(f"step {step + 1}: held-out loss {held['loss']:.4f}, "
           f"token accuracy {held['token_accuracy']:.4f}, BLEU ({search}) {held['bleu']:.2f}")
      window_start = time.time()  # evaluation time is not training time
    if (step + 1) % config.checkpoint_every_steps == 0 or last:
      checkpointing.save(manager, state, batches.get_state())
  bar.close()
  manager.wait_until_finished()
  manager.close()

  summary = _final_evaluation(config, workdir, model, state.params, corpus, eval_examples,
                              history, writer, int(state.step))
  writer.close()
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


def _heldout_bleu(config, model, params, corpus, search: str, progress=None):
  """BLEU and chrF of the held-out split, every sentence, against all its references."""
  return evaluation.evaluate_split(
      model, params, corpus.eval, corpus.src_vocab, corpus.tgt_vocab,
      batch_size=config.batch_size, max_length=config.model.max_length, search=search,
      settings=evaluation.decode_settings(config),
      references=getattr(corpus, "eval_references", None), exact_match=corpus.exact_match,
      progress=progress)


def _final_evaluation(config, workdir, model, params, corpus, eval_examples, history,
                      writer, step) -> dict:
  """Loss, perplexity, BLEU and chrF (beam search) of the held-out and test splits.

  Writes NAME.hyp.txt / NAME.ref*.txt per split (what the scores were computed on),
  the attention and curve PNGs, and TensorBoard scalars and images.
  """
  max_length = config.model.max_length
  held = evaluation.heldout_loss(model, params, eval_examples, config.batch_size, max_length)
  history["heldout"][0].append(step)
  history["heldout"][1].append(held["loss"])
  result = _heldout_bleu(config, model, params, corpus, "beam", progress="eval heldout")
  references = getattr(corpus, "eval_references", None) or [[t] for _, t in corpus.eval]
  files = evaluation.write_outputs(workdir, "heldout", result.hypotheses, references)
  report = {**held, **result.metrics, "files": files}
  history["bleu"][0].append(step)
  history["bleu"][1].append(result.metrics["bleu"])
  _log(f"held-out ({len(corpus.eval)} sentences): " + ", ".join(
      f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float)))
  _log(f"  {result.metrics['bleu_signature']}")
  summary = {"heldout": report, "test": {}}

  _log("sample translations (held-out):")
  for (src, ref), hyp in list(zip(corpus.eval, result.hypotheses))[:config.num_samples]:
    mark = "=" if hyp == ref else "x"
    _log(f"  > {src}\n  = {ref}\n  {mark} {hyp}")
  for i in range(min(config.num_attention_plots, len(corpus.eval))):
    src_words = corpus.eval[i][0].split()[:max_length]
    out_words = (result.hypotheses[i].split() + ["</s>"])[:len(result.attentions[i])]
    plots.save_attention(os.path.join(workdir, f"attention_{i}.png"),
                         result.attentions[i], src_words, out_words)
    writer.attention(step, f"attention/{i}", result.attentions[i], src_words, out_words)

  for name, pairs in (getattr(corpus, "test", None) or {}).items():
    examples, _ = input_pipeline.encode_pairs(pairs, corpus.src_vocab, corpus.tgt_vocab,
                                              max_length)
    test = evaluation.evaluate_split(
        model, params, pairs, corpus.src_vocab, corpus.tgt_vocab,
        batch_size=config.batch_size, max_length=max_length, search="beam",
        settings=evaluation.decode_settings(config), exact_match=corpus.exact_match,
        progress=f"eval {name}")
    loss = evaluation.heldout_loss(model, params, examples, config.batch_size, max_length)
    files = evaluation.write_outputs(workdir, f"test_{name}", test.hypotheses,
                                     [[t] for _, t in pairs])
    summary["test"][name] = {**loss, **test.metrics, "files": files}
    writer.scalars(step, summary["test"][name], f"test_{name}")
    _log(f"test {name} ({len(pairs)} sentences): BLEU {test.metrics['bleu']:.2f}, "
         f"chrF {test.metrics['chrf']:.2f}")

  writer.scalars(step, report, "heldout_final")
  plots.save_curves(os.path.join(workdir, "loss.png"),
                    {"train": history["train"], "held-out": history["heldout"]})
  plots.save_curves(os.path.join(workdir, "bleu.png"), {"held-out": history["bleu"]},
                    ylabel="BLEU", log_scale=False)
  with open(os.path.join(workdir, "translations.txt"), "w", encoding="utf-8") as f:
    f.writelines(h + "\n" for h in result.hypotheses)
  return summary
