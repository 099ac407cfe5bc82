"""Bucketed grain pipeline: fixed shapes, one compilation per bucket, exact restore, sharding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq import input_pipeline, steps
from jaxseq import model as model_lib
from jaxseq.vocab import BOS, EOS, PAD
from configs import default

BATCH, MAX_LENGTH = 8, 20


def make_examples(n: int, seed: int = 0, max_length: int = MAX_LENGTH):
  rng = np.random.default_rng(seed)
  return [(rng.integers(4, 30, rng.integers(1, max_length + 1)).astype(np.int32),
           rng.integers(4, 30, rng.integers(1, max_length)).astype(np.int32)) for _ in range(n)]


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


@pytest.mark.parametrize("lengths", [None, (6, 12, 20)])
def test_an_epoch_serves_every_example_once_in_fixed_shapes(lengths):
  examples = make_examples(101)
  it = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=3, num_threads=1,
                                    lengths=lengths)
  lengths = lengths or (8, 16, 20)
  per_epoch = it.schedule.batches_per_epoch
  batches = [next(it) for _ in range(per_epoch)]
  served = [r for b in batches for r in rows_of(b)]
  assert sorted(served) == sorted((tuple(s), tuple(t)) for s, t in examples)
  for b in batches:
    length = b["src"].shape[1]
    assert length in lengths and all(v.shape == (BATCH, length) for v in b.values())
    real = b["tgt_in"][:, 0] == BOS
    shifted = np.where(b["tgt_out"][:, :-1] == EOS, PAD, b["tgt_out"][:, :-1])
    assert np.array_equal(b["tgt_in"][real, 1:], shifted[real])  # tgt_in = BOS + tgt_out[:-1]
    assert not b["src"][~real].any()  # padding rows are all PAD
    # the bucket is the smallest that holds each row
    needed = max(max(len(s), len(t) + 1) for s, t in rows_of(b))
    smaller = lengths[lengths.index(length) - 1] if length != lengths[0] else 0
    assert smaller < needed <= length


def test_each_epoch_is_reshuffled_and_fixed_by_seed():
  examples = make_examples(64)
  it = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=1, num_threads=1)
  n = it.schedule.batches_per_epoch
  first = [rows_of(next(it)) for _ in range(n)]
  second = [rows_of(next(it)) for _ in range(n)]
  assert first != second and sorted(sum(first, [])) == sorted(sum(second, []))
  again = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=1, num_threads=1)
  assert [rows_of(next(again)) for _ in range(n)] == first
  other = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=2, num_threads=1)
  assert [rows_of(next(other)) for _ in range(n)] != first


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


def test_process_shards_partition_each_global_batch():
  examples = make_examples(40)
  whole = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=5,
                                       process_index=0, process_count=1)
  parts = [input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=5,
                                        process_index=p, process_count=2) for p in range(2)]
  for _ in range(6):
    full, halves = next(whole), [next(p) for p in parts]
    for k in full:
      assert halves[0][k].shape == (BATCH // 2, full[k].shape[1])
      assert np.array_equal(np.concatenate([h[k] for h in halves]), full[k])


def test_train_step_compiles_once_per_bucket_over_two_epochs():
  max_length = 16  # two buckets (8, 16): two compilations keep the test short
  m = default.get_model_config()
  m.update(cell="gru", attention="bahdanau", embed_size=8, hidden_size=8, attention_size=8,
           bidirectional=False, max_length=max_length)
  config = default.get_config()
  config.update(dict(learning_rate=1e-3, lr_schedule="constant", warmup_steps=0,
                     grad_clip_norm=1.0, num_train_steps=100))
  model = model_lib.from_config(m, 30, 30)
  state = steps.create_train_state(model, config, jax.random.key(0))
  # create_train_state leaves step a Python int; the step returns an int32 array, and that
  # change of input type alone would compile a second time
  state = state.replace(step=jnp.asarray(state.step, jnp.int32))
  step = jax.jit(functools.partial(steps.train_step, model=model, teacher_forcing_ratio=1.0,
                                   label_smoothing=0.0), donate_argnums=0)
  it = input_pipeline.TrainIterator(make_examples(48, max_length=max_length), BATCH, max_length,
                                    seed=0)
  shapes = set()
  for epoch in range(2):
    for _ in range(it.schedule.batches_per_epoch):
      batch = next(it)
      shapes.add(batch["src"].shape)
      state, _ = step(state, batch)
    if epoch == 0:
      after_first_epoch = step._cache_size()
  assert len(shapes) > 1  # the test data does fill several buckets
  assert after_first_epoch == len(shapes) <= len(input_pipeline.bucket_lengths(max_length))
  assert step._cache_size() == after_first_epoch  # the second epoch compiled nothing
