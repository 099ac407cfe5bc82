"""The training loop: data, model, steps, evaluation and what a run leaves behind."""

import functools
import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from jaxseq import configuration, data, evaluation, input_pipeline, model as model_lib
from jaxseq import parallel, plots, steps


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
  parallel.initialize_distributed(config)  # before anything touches a device
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
  eval_pairs = [p for p in corpus.eval
                if 0 < len(p[0].split()) <= max_length and 0 < len(p[1].split()) < max_length]
  _log(f"data: {len(train_examples)} training pairs ({dropped} longer than "
       f"model.max_length={max_length} dropped), {len(eval_examples)} held-out "
       f"({eval_dropped} dropped); vocab {len(corpus.src_vocab)} -> {len(corpus.tgt_vocab)}")
  corpus.src_vocab.save(os.path.join(workdir, "src_vocab.json"))
  corpus.tgt_vocab.save(os.path.join(workdir, "tgt_vocab.json"))

  model = model_lib.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
  mesh = parallel.make_mesh()
  state = parallel.init_replicated(lambda: steps.create_train_state(
      model, config, jax.random.fold_in(jax.random.key(config.seed), 1)), mesh)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  _log(f"model: {config.model.cell} {config.model.attention}, {num_params:,} parameters, "
       f"{jax.device_count()} {jax.devices()[0].platform} device(s)")

  train_step = _jit_train_step(model, config, mesh)
  batches = input_pipeline.train_batches(train_examples, config.batch_size, max_length,
                                         seed=config.seed)
  history = {"train": ([], []), "heldout": ([], [])}
  window_tokens, window_start = 0, time.time()
  total_tokens, train_seconds = 0, 0.0
  bar = tqdm(range(config.num_train_steps), desc="train", unit="step", dynamic_ncols=True)
  for step in bar:
    host_batch = next(batches)
    window_tokens += int(np.count_nonzero(host_batch["tgt_out"]))
    state, metrics = train_step(state, parallel.shard_batch(parallel.process_rows(host_batch), mesh))
    last = step + 1 == config.num_train_steps
    if (step + 1) % config.log_every_steps == 0 or last:
      metrics = jax.device_get(metrics)  # waits for the step, so the window is timed honestly
      elapsed = time.time() - window_start
      total_tokens += window_tokens
      train_seconds += elapsed
      loss = float(metrics["loss"]) / max(float(metrics["tokens"]), 1.0)
      history["train"][0].append(step + 1)
      history["train"][1].append(loss)
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
      _log(f"step {step + 1}: held-out loss {held['loss']:.4f}, "
           f"token accuracy {held['token_accuracy']:.4f}")
      window_start = time.time()  # evaluation time is not training time
  bar.close()

  summary = _final_evaluation(config, workdir, model, state.params, corpus, eval_examples,
                              eval_pairs, history)
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


def _final_evaluation(config, workdir, model, params, corpus, eval_examples, eval_pairs,
                      history) -> dict:
  max_length = config.model.max_length
  held = evaluation.heldout_loss(model, params, eval_examples, config.batch_size, max_length)
  history["heldout"][0].append(history["train"][0][-1] if history["train"][0] else 0)
  history["heldout"][1].append(held["loss"])
  outputs, attentions = evaluation.greedy_translate(model, params, eval_examples,
                                                    config.batch_size, max_length)
  hypotheses = [corpus.tgt_vocab.decode(o) for o in outputs]
  references = [t for _, t in eval_pairs]
  metrics = evaluation.text_metrics(hypotheses, references, corpus.exact_match)
  report = ", ".join(f"{k} {v:.4f}" for k, v in {**held, **metrics}.items())
  _log(f"held-out ({len(references)} sentences): {report}")

  _log("sample translations (held-out):")
  for (src, ref), hyp in list(zip(eval_pairs, hypotheses))[:config.num_samples]:
    mark = "=" if hyp == ref else "x"
    _log(f"  > {src}\n  = {ref}\n  {mark} {hyp}")
  for i in range(min(config.num_attention_plots, len(outputs))):
    src_words = eval_pairs[i][0].split()
    out_words = hypotheses[i].split() + ["</s>"]
    plots.save_attention(os.path.join(workdir, f"attention_{i}.png"),
                         attentions[i], src_words, out_words)
  plots.save_curves(os.path.join(workdir, "loss.png"),
                    {"train": history["train"], "held-out": history["heldout"]})
  with open(os.path.join(workdir, "translations.txt"), "w", encoding="utf-8") as f:
    f.writelines(h + "\n" for h in hypotheses)
  return {"heldout": {**held, **metrics, "sentences": len(references)}}
