"""The training run: data, model, the step loop, evaluation and what a run leaves behind."""

import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from jaxseq.data import corpora, input_pipeline, tokenizers
from jaxseq.decoding import evaluation
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.errors import ConfigError
from jaxseq.model import seq2seq
from jaxseq.training import (
  averaging,
  checkpointing,
  configuration,
  early_stopping,
  metrics_writer,
  parallel,
  plots,
  preemption,
  steps,
)

STEP_LOG = "steps.jsonl"  # per-step losses when config.step_log is on


class TrainingStopped(RuntimeError):
  """The run cannot go on (e.g. too many non-finite steps in a row)."""


class TrainingInterrupted(RuntimeError):
  """A stop signal arrived; the state after the last step was saved and can be resumed."""


def _log(message: str):
  tqdm.write(message)


@dataclasses.dataclass
class Run:
  """What every part of one training run reads; built once by `train_and_evaluate`."""

  config: configuration.TrainConfig
  workdir: str
  corpus: corpora.Corpus
  model: seq2seq.Seq2Seq
  mesh: jax.sharding.Mesh
  manager: ocp.CheckpointManager  # of workdir/checkpoints
  writer: metrics_writer.MetricsWriter
  started: float  # time.time() when train_and_evaluate began (data preparation included)

  def score(
    self, params, pairs, *, references=None, search: str = "beam", name: str | None = None
  ) -> evaluation.SplitResult:
    """evaluation.score_split of one split with this run's model, vocabularies and
    settings; with a name, its hypothesis and reference files go to the workdir."""
    config = self.config
    corpus = self.corpus
    return evaluation.score_split(
      evaluation.Searcher(self.model, params, config.model.max_length, config.batch_size),
      evaluation.Vocabularies(corpus.src_vocab, corpus.tgt_vocab),
      evaluation.Split(pairs, references, corpus.exact_match, corpora.target_language(config)),
      DecodeOptions.from_config(config.decode, Search(search)),
      written=evaluation.Written(self.workdir, name) if name else None,
      progress=f"eval {name}" if name else None,
    )

  def score_heldout(self, params, *, search: str = "beam", name: str | None = None):
    return self.score(
      params, self.corpus.eval, references=self.corpus.eval_references, search=search, name=name
    )


@dataclasses.dataclass
class History:
  """(steps, values) curves of one run, and whether it stopped early."""

  train: tuple[list, list] = dataclasses.field(default_factory=lambda: ([], []))
  heldout: tuple[list, list] = dataclasses.field(default_factory=lambda: ([], []))
  bleu: tuple[list, list] = dataclasses.field(default_factory=lambda: ([], []))
  # per periodic evaluation: training seconds (this process, evaluation excluded), seconds
  # since the run started (data preparation and evaluation included), 1-minute load average
  clock: list[dict] = dataclasses.field(default_factory=list)
  stopped_early: bool = False

  @staticmethod
  def add(curve: tuple[list, list], step: int, value: float):
    curve[0].append(step)
    curve[1].append(value)


def _jit_train_step(model, config, mesh):
  step = functools.partial(
    steps.train_step,
    model=model,
    teacher_forcing_ratio=config.teacher_forcing_ratio,
    label_smoothing=config.label_smoothing,
    coverage_loss_weight=config.coverage_loss_weight,
    coverage_loss_from_step=config.coverage_loss_from_step,
    mesh=mesh,
  )
  return jax.jit(
    step,
    in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
    out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
    donate_argnums=0,
  )


def start(config, workdir: str):
  """Everything before the first step: the checked config (configuration.validate of a
  ConfigDict or TrainConfig), the corpus, tokenizers, model, train state (restored
  from the workdir's newest checkpoint if there is one), the input iterator (at the saved
  position) and the jitted step; config.json is written last, once all of that worked.
  Returns (run, state, batches, train_step); the caller closes run.writer and
  run.manager."""
  parallel.initialize_distributed(config)  # before anything touches a device
  config = configuration.validate(config, num_devices=jax.device_count())
  checkpointing.prepare_workdir(workdir)
  resuming = checkpointing.has_checkpoints(workdir)
  if resuming:
    checkpointing.check_same_run(workdir, config)
  started = time.time()

  corpus = corpora.load_corpus(config, workdir)
  corpus.src_vocab, corpus.tgt_vocab = _tokenizers(workdir, corpus, resuming)
  sampling = None
  if config.data.subword_alpha > 0:
    sampling = input_pipeline.SubwordSampling(
      config.data.subword_alpha, config.data.subword_nbest, config.seed
    )
  train_examples = input_pipeline.EncodedPairs(
    corpus.train, corpus.src_vocab, corpus.tgt_vocab, sampling
  )
  _log(
    f"data: {len(train_examples)} training pairs (encoded as read; those longer than "
    f"model.max_length={config.model.max_length} are skipped), {len(corpus.eval)} "
    f"held-out; vocab {len(corpus.src_vocab)} -> {len(corpus.tgt_vocab)}"
  )

  model = seq2seq.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
  mesh = parallel.make_mesh()
  state = parallel.init_replicated(
    lambda: steps.create_train_state(
      model, config, jax.random.fold_in(jax.random.key(config.seed), 1)
    ),
    mesh,
  )
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  _log(
    f"model: {config.model.cell} {config.model.attention}, {num_params:,} parameters, "
    f"{jax.device_count()} {jax.devices()[0].platform} device(s)"
  )

  if len(train_examples) < config.batch_size:
    raise ConfigError(
      "batch_size",
      config.batch_size,
      f"at most the {len(train_examples)} training pairs of the corpus",
    )
  batches = input_pipeline.TrainIterator(
    train_examples,
    config.batch_size,
    config.model.max_length,
    seed=config.seed,
    lengths=input_pipeline.train_lengths(config.bucket_lengths, config.model.max_length),
  )
  run = Run(
    config,
    workdir,
    corpus,
    model,
    mesh,
    checkpointing.make_manager(workdir, config),
    metrics_writer.MetricsWriter(workdir),
    started,
  )
  try:
    restored = checkpointing.restore_latest(run.manager, state, workdir, log=_log)
    if restored is not None:
      state = restored.state
      try:
        batches.set_state(restored.data_state)
      except ValueError as e:
        raise checkpointing.CheckpointError(
          f"the input position saved at step {restored.step} in {run.manager.directory} "
          f"cannot be restored ({e}); resume with the jaxseq version that wrote it, or "
          "start a new workdir"
        ) from None
      _log(f"resumed from step {restored.step} in {run.manager.directory}")
    # Written once the run is known to start: a resume refused above leaves the saved
    # config.json as it was.
    checkpointing.save_config(workdir, config)
  except BaseException:
    close_run(run)
    raise
  return run, state, batches, _jit_train_step(model, config, mesh)


def close_run(run: Run):
  """Closes what `start` opened: the metrics writer and the checkpoint manager."""
  run.writer.close()
  with contextlib.suppress(Exception):  # the error that got us here is the one to report
    run.manager.close()


def train_and_evaluate(
  config, workdir: str, after_step: Callable[[int], None] | None = None
) -> dict:
  """Trains config's model, evaluates it, writes the workdir; returns the summary.

  after_step, when given, is called with each step's number once that step (and its
  checkpoint, if it saves one) is done: a place for periodic actions of the caller's own.
  """
  run, state, batches, train_step = start(config, workdir)
  config, started = run.config, run.started
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  try:
    history = History()
    state, clock = _train(run, state, batches, train_step, history, after_step)
    checkpointing.wait(run.manager)
    summary = _final_evaluation(run, state.params, history, int(state.step))
    summary["stopped_early"] = history.stopped_early
    if config.average_last_checkpoints:
      summary["averaged"] = _evaluate_average(run, state)
  finally:
    close_run(run)

  summary.update(
    steps=int(state.step),
    wall_seconds=time.time() - started,
    train_seconds=clock.seconds,
    tokens_per_second=clock.tokens / max(clock.seconds, 1e-9),
    num_parameters=int(num_params),
    skipped_steps=int(state.opt_state.total_notfinite),
    skipped_train_pairs=batches.skipped,
    devices=[str(d) for d in jax.devices()],
    config=config.to_dict(),
  )
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, default=str)
  _log(f"wrote {os.path.join(workdir, 'summary.json')}")
  return summary


def _tokenizers(workdir: str, corpus, resuming: bool):
  """A new run saves the corpus' tokenizers; a resumed one reads the saved ones back."""
  if not resuming:
    tokenizers.save_pair(workdir, corpus.src_vocab, corpus.tgt_vocab)
    return corpus.src_vocab, corpus.tgt_vocab
  try:
    saved = tokenizers.load_pair(workdir)
  except (OSError, ValueError, KeyError) as e:
    raise checkpointing.CheckpointError(
      f"the tokenizers saved in {workdir!r} cannot be read: {e}"
    ) from None
  for side, name, old, new in (
    ("source", tokenizers.SRC_FILE, saved[0], corpus.src_vocab),
    ("target", tokenizers.TGT_FILE, saved[1], corpus.tgt_vocab),
  ):
    checkpointing.check_same_vocab(side, os.path.join(workdir, name), old.words, new.words)
  return saved


class StepMonitor:
  """Reads each step's metrics one step late, so the device never waits for the host.

  At log, evaluation and checkpoint steps (and on a stop signal) every pending step is
  read, so that no checkpoint is written before the non-finite guard has seen the steps
  it holds. Also times the training windows and writes config.step_log's records.
  """

  def __init__(self, run: Run, first_step: int):
    self.config, self.run = run.config, run
    self.pending: list[tuple[int, Any]] = []  # (step number, device metrics) not read yet
    self.window_tokens, self.window_start = 0, time.time()
    self.tokens, self.seconds = 0, 0.0  # totals over the logged windows
    self.step_log = None
    if self.config.step_log:
      self.step_log = open(os.path.join(run.workdir, STEP_LOG), "a")
    self.bar = tqdm(
      total=self.config.num_train_steps,
      initial=first_step,
      desc="train",
      unit="step",
      dynamic_ncols=True,
    )

  def close(self):
    self.bar.close()
    if self.step_log:
      self.step_log.close()

  def record(self, record: dict):
    if self.step_log:
      self.step_log.write(json.dumps(record) + "\n")
      self.step_log.flush()

  def add(self, number: int, metrics, tokens: int, *, read_all: bool) -> float:
    """Queues one step; reads every pending step (read_all) or all but this one.
    Returns the loss of the last step read (nan when none)."""
    self.pending.append((number, metrics))
    self.window_tokens += tokens
    self.bar.update(1)
    return self.read(keep=0 if read_all else 1)

  def read(self, keep: int = 0) -> float:
    """Reads the pending steps but the newest `keep`; raises TrainingStopped when the
    non-finite guard trips. Returns the loss of the last step read (nan when none)."""
    ready = self.pending[: len(self.pending) - keep]
    self.pending = self.pending[len(ready) :]
    loss = float("nan")
    for step, metrics in ready:
      metrics = jax.device_get(metrics)
      loss = float(metrics["loss"]) / max(float(metrics["tokens"]), 1.0)
      in_a_row = int(metrics["skipped"])
      self.record({"step": step, "loss": loss, "skipped": in_a_row > 0})
      if in_a_row:
        _log(
          f"step {step}: non-finite loss or gradient, update skipped "
          f"({in_a_row} in a row, config.max_bad_steps={self.config.max_bad_steps})"
        )
      if in_a_row >= self.config.max_bad_steps:
        raise TrainingStopped(
          f"{in_a_row} non-finite steps in a row up to step {step} "
          f"(config.max_bad_steps={self.config.max_bad_steps}); nothing after them was "
          f"saved, the checkpoints of steps {self.run.manager.all_steps()} hold finite "
          "parameters"
        )
    return loss

  def end_window(self, number: int, loss: float):
    """Closes a logging window: its tokens per second to the bar and TensorBoard."""
    elapsed = max(time.time() - self.window_start, 1e-9)
    rate = self.window_tokens / elapsed
    self.tokens, self.seconds = self.tokens + self.window_tokens, self.seconds + elapsed
    self.run.writer.scalars(number, {"loss": loss, "tokens_per_second": rate}, "train")
    self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}")
    self.restart_window()

  def pause(self):
    """Adds the open window's time and tokens to the totals, before an evaluation (which
    is not training time); restart_window starts timing again after it."""
    self.tokens += self.window_tokens
    self.seconds += time.time() - self.window_start
    self.window_tokens, self.window_start = 0, time.time()

  def restart_window(self):
    """Starts timing afresh (evaluation time is not training time)."""
    self.window_tokens, self.window_start = 0, time.time()


def _train(
  run: Run, state, batches, train_step, history: History, after_step: Callable[[int], None] | None
):
  """Steps from state.step to config.num_train_steps; evaluates, saves, obeys signals.

  Returns the final state and the StepMonitor, whose totals time the training.
  """
  config = run.config
  stopping = early_stopping.EarlyStopping(config.early_stopping_patience)
  monitor = StepMonitor(run, int(state.step))
  with preemption.catch_stop_signals() as stop, contextlib.closing(monitor):
    for number in range(int(state.step) + 1, config.num_train_steps + 1):
      host_batch = next(batches)
      state, metrics = train_step(state, parallel.shard_batch(host_batch, run.mesh))
      last = number == config.num_train_steps
      is_log = number % config.log_every_steps == 0 or last
      is_eval = number % config.eval_every_steps == 0 and not last
      is_save = number % config.checkpoint_every_steps == 0 or is_eval or last
      loss = monitor.add(
        number,
        metrics,
        int(np.count_nonzero(host_batch["tgt_out"])),
        read_all=is_log or is_save or bool(stop.signal_name),
      )
      if is_log:
        History.add(history.train, number, loss)
        monitor.end_window(number, loss)
      save_metrics = None
      if is_eval:
        save_metrics = _periodic_evaluation(run, state.params, number, history, monitor)
        state = _observe_plateau(run, state, save_metrics["heldout_loss"], number)
        history.stopped_early = stopping.update(number, save_metrics["bleu"])
        monitor.restart_window()
      if is_save:
        checkpointing.save(
          run.manager, state, batches.get_state(), metrics=save_metrics, force=True
        )
      if history.stopped_early:
        _log(
          f"early stopping at step {number}: held-out BLEU has not improved on "
          f"{stopping.best:.2f} (step {stopping.best_step}) for {stopping.since_best} "
          f"evaluations (config.early_stopping_patience={stopping.patience})"
        )
        break
      if after_step is not None:
        after_step(number)
      if stop.signal_name and not last:
        _save_and_stop(run, state, batches, monitor, stop.signal_name, number, saved=is_save)
  return state, monitor


def _save_and_stop(
  run: Run, state, batches, monitor: StepMonitor, signal_name: str, number: int, *, saved: bool
):
  """Reads every pending step, saves (unless this step already did) and stops the run."""
  monitor.read()
  if not saved:
    checkpointing.save(run.manager, state, batches.get_state(), force=True)
  checkpointing.wait(run.manager)
  raise TrainingInterrupted(
    f"stopped by {signal_name} after step {number}; the checkpoint is in "
    f"{run.manager.directory}/{number}; run the same command (same --workdir) to resume"
  )


def _periodic_evaluation(
  run: Run, params, number: int, history: History, monitor: StepMonitor
) -> dict:
  """Held-out loss and BLEU (config.decode.eval_search) during training; returns what the
  checkpoint records to choose the best one."""
  search = run.config.decode.eval_search
  monitor.pause()
  history.clock.append(
    {
      "train_seconds": round(monitor.seconds, 2),
      "wall_seconds": round(time.time() - run.started, 2),
      "load_1min": round(os.getloadavg()[0], 2),
    }
  )
  held = run.score_heldout(params, search=search).metrics
  History.add(history.heldout, number, held["loss"])
  History.add(history.bleu, number, held["bleu"])
  run.writer.scalars(number, held, "heldout")
  _log(
    f"step {number}: held-out loss {held['loss']:.4f}, "
    f"token accuracy {held['token_accuracy']:.4f}, BLEU ({search}) {held['bleu']:.2f}"
  )
  monitor.record({"step": number, "heldout_loss": held["loss"]})
  return {"heldout_loss": held["loss"], "bleu": held["bleu"]}


def _observe_plateau(run: Run, state, heldout_loss: float, step: int):
  """Feeds the held-out loss to reduce-on-plateau (when on) and logs a changed rate."""
  before = steps.plateau_scale(state)
  if before is None:
    return state
  state = steps.observe_heldout_loss(state, heldout_loss, run.config)
  after = steps.plateau_scale(state)
  if after != before:
    _log(f"step {step}: held-out loss stalled; learning rate factor {before:g} -> {after:g}")
  return jax.device_put(state, parallel.replicated(run.mesh))


def _test_scores(run: Run, params, suffix: str = "") -> dict:
  """Beam-search scores of every test split, each written as test_NAME{suffix}.*.txt."""
  report = {}
  for name, pairs in run.corpus.test.items():
    report[name] = run.score(params, pairs, name=f"test_{name}{suffix}").metrics
    _log(
      f"test {name}{suffix} ({len(pairs)} sentences): BLEU {report[name]['bleu']:.2f}, "
      f"chrF {report[name]['chrf']:.2f}"
    )
  return report


def _evaluate_average(run: Run, state) -> dict:
  """Held-out and test scores of the mean params of the newest checkpoints."""
  used, params = averaging.average_last(run.manager, run.config.average_last_checkpoints, state)
  held = run.score_heldout(params, name="heldout_averaged").metrics
  _log(
    f"averaged params of steps {used}: held-out loss {held['loss']:.4f}, BLEU {held['bleu']:.2f}"
  )
  return {"steps": used, "heldout": held, "test": _test_scores(run, params, "_averaged")}


def _final_evaluation(run: Run, params, history: History, step: int) -> dict:
  """Loss, perplexity, BLEU and chrF (beam search) of the held-out and test splits.

  Writes NAME.hyp.txt / NAME.ref*.txt per split (what the scores were computed on),
  the attention and curve PNGs, and TensorBoard scalars and images.
  """
  config, corpus, workdir = run.config, run.corpus, run.workdir
  # The periodic evaluations of training, before the final one below is added.
  curve = {
    "search": config.decode.eval_search,
    "steps": list(history.bleu[0]),
    "bleu": list(history.bleu[1]),
    "loss": list(history.heldout[1]),
    **{
      key: [c[key] for c in history.clock] for key in ("train_seconds", "wall_seconds", "load_1min")
    },
  }
  result = run.score_heldout(params, name="heldout")
  report = result.metrics
  History.add(history.heldout, step, report["loss"])
  History.add(history.bleu, step, report["bleu"])
  _log(
    f"held-out ({len(corpus.eval)} sentences): "
    + ", ".join(f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float))
  )
  _log(f"  {report['bleu_signature']}")
  _log("sample translations (held-out):")
  for (src, ref), hyp in list(zip(corpus.eval, result.hypotheses))[: config.num_samples]:
    _log(f"  > {src}\n  = {ref}\n  {'=' if hyp == ref else 'x'} {hyp}")
  for i in range(min(config.num_attention_plots, len(corpus.eval))):
    _plot_attention(run, step, i, result)
  summary = {"heldout": report, "test": _test_scores(run, params), "heldout_curve": curve}
  for name, scores in summary["test"].items():
    run.writer.scalars(step, scores, f"test_{name}")
  run.writer.scalars(step, report, "heldout_final")
  plots.save_curves(
    os.path.join(workdir, "loss.png"), {"train": history.train, "held-out": history.heldout}
  )
  plots.save_curves(
    os.path.join(workdir, "bleu.png"), {"held-out": history.bleu}, ylabel="BLEU", log_scale=False
  )
  with open(os.path.join(workdir, "translations.txt"), "w", encoding="utf-8") as f:
    f.writelines(h + "\n" for h in result.hypotheses)
  return summary


def _plot_attention(run: Run, step: int, i: int, result: evaluation.SplitResult):
  """attention_{i}.png and its TensorBoard image, one label per token (subword pieces
  for SentencePiece, words for word vocabularies)."""
  corpus = run.corpus
  src_ids = corpus.src_vocab.encode(corpus.eval[i][0])[: run.config.model.max_length]
  src_words = [corpus.src_vocab.decode([t]) for t in src_ids]
  out_ids = corpus.tgt_vocab.encode(result.hypotheses[i])
  out_words = ([corpus.tgt_vocab.decode([t]) for t in out_ids] + ["</s>"])[
    : len(result.attentions[i])
  ]
  plots.save_attention(
    os.path.join(run.workdir, f"attention_{i}.png"), result.attentions[i], src_words, out_words
  )
  run.writer.attention(step, f"attention/{i}", result.attentions[i], src_words, out_words)
