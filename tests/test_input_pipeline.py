"""Bucketed grain pipeline: fixed shapes, one compilation per bucket, exact restore, sharding."""

import collections
import collections.abc
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxseq.data import input_pipeline
from jaxseq.data.vocab import BOS, EOS, PAD, WordVocab
from jaxseq.model import seq2seq
from jaxseq.training import steps

BATCH, MAX_LENGTH = 8, 20


def make_examples(n: int, seed: int = 0, max_length: int = MAX_LENGTH):
  rng = np.random.default_rng(seed)
  return [
    (
      rng.integers(4, 30, rng.integers(1, max_length + 1)).astype(np.int32),
      rng.integers(4, 30, rng.integers(1, max_length)).astype(np.int32),
    )
    for _ in range(n)
  ]


def rows_of(batch):
  """The (source, target) of each real row of a batch."""
  out = []
  for src, tgt in zip(batch["src"], batch["tgt_out"]):
    if src.any():
      n = int(np.argmax(tgt == EOS))
      out.append((tuple(src[src != PAD]), tuple(tgt[:n])))
  return out


def test_bucket_lengths_end_at_max_length():
  assert input_pipeline.bucket_lengths(64) == (8, 16, 32, 64)
  assert input_pipeline.bucket_lengths(20) == (8, 16, 20)
  assert input_pipeline.bucket_lengths(8) == (8,)


def test_configured_bucket_lengths_are_checked():
  assert input_pipeline.train_lengths("", 64) == (8, 16, 32, 64)
  assert input_pipeline.train_lengths("8,12, 16,24,64", 64) == (8, 12, 16, 24, 64)
  for bad in ("8,16,32", "8,16,16,64", "16,8,64", "0,64", "8;64", "8,,64"):
    with pytest.raises(ValueError, match="ending at model.max_length"):
      input_pipeline.train_lengths(bad, 64)


def check_batch(b, lengths):
  """Fixed shape, full rows, tgt_in = BOS + tgt_out[:-1], the smallest bucket that holds it."""
  length = b["src"].shape[1]
  assert length in lengths and all(v.shape == (BATCH, length) for v in b.values())
  assert (b["tgt_in"][:, 0] == BOS).all()  # every row is a real example
  shifted = np.where(b["tgt_out"][:, :-1] == EOS, PAD, b["tgt_out"][:, :-1])
  assert np.array_equal(b["tgt_in"][:, 1:], shifted)
  smaller = lengths[lengths.index(length) - 1] if length != lengths[0] else 0
  assert all(smaller < max(len(s), len(t) + 1) <= length for s, t in rows_of(b))


@pytest.mark.parametrize("lengths", [None, (6, 12, 20)])
def test_batches_are_full_fixed_shapes_and_serve_every_example(lengths):
  examples = make_examples(101)
  it = input_pipeline.TrainIterator(
    examples, BATCH, MAX_LENGTH, seed=3, num_threads=1, lengths=lengths
  )
  lengths = lengths or (8, 16, 20)
  batches = [next(it) for _ in range(3 * 101 // BATCH)]  # about three epochs
  for b in batches:
    check_batch(b, lengths)
  counts = collections.Counter(r for b in batches for r in rows_of(b))
  assert set(counts) == {(tuple(s), tuple(t)) for s, t in examples}
  # an epoch is read whole before the next begins; only the partly filled buckets' rows
  # (fewer than BATCH per bucket) wait past its end
  assert 2 <= min(counts.values()) and max(counts.values()) <= 4


def test_each_epoch_is_reshuffled_and_fixed_by_seed():
  examples = make_examples(64)
  read = lambda it, n: [rows_of(next(it)) for _ in range(n)]
  it = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=1, num_threads=1)
  first, second = read(it, 6), read(it, 6)
  assert first != second
  again = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=1, num_threads=1)
  assert read(again, 12) == first + second
  other = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=2, num_threads=1)
  assert read(other, 6) != first


class CountingExamples(collections.abc.Sequence):
  """Examples made on demand, counting how many were read."""

  def __init__(self, n: int):
    self.n, self.reads = n, 0

  def __len__(self):
    return self.n

  def __getitem__(self, index):
    self.reads += 1
    rng = np.random.default_rng(index)
    return (
      rng.integers(4, 30, rng.integers(1, 7)).astype(np.int32),
      rng.integers(4, 30, rng.integers(1, 7)).astype(np.int32),
    )


def test_the_examples_are_read_on_demand_not_whole():
  examples = CountingExamples(1_000_000)
  it = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=0, num_threads=1, prefetch=2)
  first = [next(it) for _ in range(3)]
  time.sleep(0.5)  # let the prefetch fill up: what it holds is bounded too
  # three batches need one chunk or two; the prefetch buffer holds two more
  assert examples.reads <= 6 * input_pipeline.CHUNK
  rows = [r for b in first for r in rows_of(b)]
  assert len(set(rows)) == len(rows)  # a shuffled draw from a million, not repeats


def test_pairs_that_do_not_fit_are_skipped_and_a_corpus_without_one_is_an_error():
  fitting = make_examples(40)
  too_long = [
    (np.arange(4, 4 + MAX_LENGTH + 1, dtype=np.int32), np.array([5], np.int32)),
    (np.array([5], np.int32), np.array([], np.int32)),
  ]
  it = input_pipeline.TrainIterator(fitting + too_long * 5, BATCH, MAX_LENGTH, seed=0)
  rows = {r for _ in range(20) for r in rows_of(next(it))}
  assert rows == {(tuple(s), tuple(t)) for s, t in fitting} and it.skipped >= 10
  bad = input_pipeline.TrainIterator(too_long * 8, BATCH, MAX_LENGTH, seed=0)
  with pytest.raises(ValueError, match="no training pair fits model.max_length=20"):
    next(bad)


def test_encoded_pairs_encode_when_read():
  vocab = WordVocab.build(["a b c"])
  pairs = input_pipeline.EncodedPairs([("a b", "c"), ("c", "a a b")], vocab, vocab)
  assert len(pairs) == 2
  assert [list(x) for x in pairs[1]] == [vocab.encode("c"), vocab.encode("a a b")]


def test_restored_iterator_continues_the_uninterrupted_stream():
  examples = make_examples(50)
  it = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=0)
  for _ in range(11):  # into the second epoch
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(12)]
  fresh = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=0)
  fresh.set_state(state)
  for want, got in zip(expected, (next(fresh) for _ in range(12))):
    assert all(np.array_equal(want[k], got[k]) for k in want)
  with pytest.raises(ValueError, match="seed"):
    input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=9).set_state(state)
  older = {"grain": {"next_index": 88}, "seed": 0}  # what the pre-streaming pipeline saved
  with pytest.raises(ValueError, match="not written by this pipeline"):
    fresh.set_state(older)


def test_process_shards_partition_each_global_batch():
  examples = make_examples(40)
  whole = input_pipeline.TrainIterator(
    examples, BATCH, MAX_LENGTH, seed=5, process_index=0, process_count=1
  )
  parts = [
    input_pipeline.TrainIterator(
      examples, BATCH, MAX_LENGTH, seed=5, process_index=p, process_count=2
    )
    for p in range(2)
  ]
  for _ in range(6):
    full, halves = next(whole), [next(p) for p in parts]
    for k in full:
      assert halves[0][k].shape == (BATCH // 2, full[k].shape[1])
      assert np.array_equal(np.concatenate([h[k] for h in halves]), full[k])


def test_train_step_compiles_once_per_bucket_over_two_epochs():
  max_length = 16  # two buckets (8, 16): two compilations keep the test short
  m = default.get_model_config()
  m.update(
    cell="gru",
    attention="bahdanau",
    embed_size=8,
    hidden_size=8,
    attention_size=8,
    bidirectional=False,
    max_length=max_length,
  )
  config = default.get_config()
  config.update(
    dict(
      learning_rate=1e-3,
      lr_schedule="constant",
      warmup_steps=0,
      grad_clip_norm=1.0,
      num_train_steps=100,
    )
  )
  model = seq2seq.from_config(m, 30, 30)
  state = steps.create_train_state(model, config, jax.random.key(0))
  # create_train_state leaves step a Python int; the step returns an int32 array, and that
  # change of input type alone would compile a second time
  state = state.replace(step=jnp.asarray(state.step, jnp.int32))
  step = jax.jit(
    functools.partial(
      steps.train_step, model=model, teacher_forcing_ratio=1.0, label_smoothing=0.0
    ),
    donate_argnums=0,
  )
  it = input_pipeline.TrainIterator(
    make_examples(48, max_length=max_length), BATCH, max_length, seed=0
  )
  shapes = set()
  for epoch in range(2):
    for _ in range(48 // BATCH):
      batch = next(it)
      shapes.add(batch["src"].shape)
      state, _ = step(state, batch)
    if epoch == 0:
      after_first_epoch = step._cache_size()
  assert len(shapes) > 1  # the test data does fill several buckets
  assert after_first_epoch == len(shapes) <= len(input_pipeline.bucket_lengths(max_length))
  assert step._cache_size() == after_first_epoch  # the second epoch compiled nothing
