"""Early stopping and checkpoint averaging in real tiny runs of train.py's main."""

import functools
import json

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxseq.data import corpora, input_pipeline, tokenizers
from jaxseq.decoding import evaluation
from jaxseq.model import seq2seq
from jaxseq.training import averaging, checkpointing, steps
from tests import runs


def _summary(workdir) -> dict:
  return json.loads((workdir / "summary.json").read_text())


def test_early_stopping_ends_the_run_after_patience_evaluations_without_better_bleu(
  capfd, tmp_path
):
  # A learning rate this small leaves every greedy translation, and so BLEU, as it
  # was: held-out evaluations at 7 (best), 14 and 21 (no better) -> stop at 21.
  result = runs.train_here(capfd, tmp_path, learning_rate=1e-12, early_stopping_patience=2)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = _summary(tmp_path)
  assert summary["stopped_early"] is True
  assert summary["steps"] == 21
  assert max(r["step"] for r in runs.step_records(tmp_path)) == 21
  assert 21 in runs.checkpoint_steps(tmp_path)
  log = result.stdout + result.stderr
  assert "early stopping at step 21" in log and "(step 7) for 2 evaluations" in log


def test_averaged_checkpoints_are_the_mean_of_the_newest_and_are_what_is_scored(capfd, tmp_path):
  result = runs.train_here(capfd, tmp_path, keep_checkpoints=2, average_last_checkpoints=2)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = _summary(tmp_path)
  averaged = summary["averaged"]
  assert averaged["steps"] == [28, 30]  # saves at 7, 10, 14, 20, 21, 28, 30

  config = checkpointing.load_config(str(tmp_path))
  src_vocab, tgt_vocab = tokenizers.load_pair(str(tmp_path))
  model = seq2seq.from_config(config.model, len(src_vocab), len(tgt_vocab))
  abstract = jax.eval_shape(
    functools.partial(steps.create_train_state, model, config), jax.random.key(0)
  )
  directory = tmp_path / checkpointing.CHECKPOINT_DIR
  with ocp.CheckpointManager(
    directory, options=ocp.CheckpointManagerOptions(read_only=True)
  ) as manager:
    restored = [
      jax.device_get(checkpointing.restore_state(manager, s, abstract).params) for s in (28, 30)
    ]
    used, mean = averaging.average_last(manager, 2, abstract)
  assert used == [28, 30]
  for got, a, b in zip(jax.tree.leaves(mean), *map(jax.tree.leaves, restored)):
    np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(a, b)

  # The averaged scores are those of the mean parameters, not of the final ones.
  corpus = corpora.load_corpus(config)
  examples, _ = input_pipeline.encode_indexed(
    corpus.eval, src_vocab, tgt_vocab, config.model.max_length
  )
  loss = evaluation.heldout_loss(model, mean, examples, config.batch_size, config.model.max_length)[
    "loss"
  ]
  np.testing.assert_allclose(averaged["heldout"]["loss"], loss, rtol=1e-5)
  assert averaged["heldout"]["loss"] != summary["heldout"]["loss"]
  hyps = (tmp_path / "heldout_averaged.hyp.txt").read_text().splitlines()
  assert len(hyps) == averaged["heldout"]["sentences"] == 20
