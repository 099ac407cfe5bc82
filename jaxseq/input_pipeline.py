"""Token ids to padded batches: filtering, seeded shuffling, length buckets, sharding.

A batch is a dict of int32 arrays, 0 = PAD, all three of one padded length L:
  src      [batch, L]  source ids
  tgt_in   [batch, L]  BOS y_1 ... y_n   (decoder inputs)
  tgt_out  [batch, L]  y_1 ... y_n EOS   (what the decoder must predict)
Training batches take L from a small fixed set (`bucket_lengths`: 8, 16, 32, ... up to
model.max_length), so the jitted step compiles once per bucket and never again; the batch
size is fixed too (rows past the examples stay PAD and carry no loss). Held-out batches use
L = max_length.
"""

import functools
from collections.abc import Iterator, Sequence

import grain
import jax
import numpy as np

from jaxseq.vocab import BOS, EOS, PAD

Example = tuple[np.ndarray, np.ndarray]  # (source ids, target ids), no BOS/EOS


def encode_indexed(pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab, max_length: int
                   ) -> tuple[list[Example], list[int]]:
  """Encodes the pairs that fit; returns them with their indices into pairs.

  A pair fits when the source has at most max_length tokens and the target, with
  EOS appended, also does. Empty sides are dropped too: they teach nothing.
  """
  examples, kept = [], []
  for index, (src, tgt) in enumerate(pairs):
    s = np.asarray(src_vocab.encode(src), np.int32)
    t = np.asarray(tgt_vocab.encode(tgt), np.int32)
    if 0 < len(s) <= max_length and 0 < len(t) < max_length:
      examples.append((s, t))
      kept.append(index)
  return examples, kept


def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab, max_length: int
                 ) -> tuple[list[Example], int]:
  """Encodes the pairs that fit (see encode_indexed); returns them and the number dropped."""
  examples, kept = encode_indexed(pairs, src_vocab, tgt_vocab, max_length)
  return examples, len(pairs) - len(kept)


def pad_batch(examples: Sequence[Example], max_length: int, batch_size: int) -> dict:
  """Pads examples into one batch of batch_size rows (rows past the examples stay PAD)."""
  src = np.full((batch_size, max_length), PAD, np.int32)
  tgt_in = np.full((batch_size, max_length), PAD, np.int32)
  tgt_out = np.full((batch_size, max_length), PAD, np.int32)
  for row, (s, t) in enumerate(examples):
    src[row, :len(s)] = s
    tgt_in[row, 0] = BOS
    tgt_in[row, 1:len(t) + 1] = t
    tgt_out[row, :len(t)] = t
    tgt_out[row, len(t)] = EOS
  return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}


def bucket_lengths(max_length: int, smallest: int = 8) -> tuple[int, ...]:
  """Padded lengths of training batches: powers of two from smallest, then max_length."""
  lengths, length = [], smallest
  while length < max_length:
    lengths.append(length)
    length *= 2
  return (*lengths, max_length)


def train_lengths(text: str, max_length: int) -> tuple[int, ...]:
  """config.bucket_lengths: "" gives bucket_lengths(max_length); else comma-separated
  lengths, increasing, the last max_length. Raises ValueError otherwise."""
  if not text.strip():
    return bucket_lengths(max_length)
  try:
    lengths = tuple(int(t) for t in text.split(","))
  except ValueError:
    lengths = ()
  if (not lengths or lengths[0] < 1 or lengths[-1] != max_length
      or any(a >= b for a, b in zip(lengths, lengths[1:]))):
    raise ValueError(f"comma-separated increasing lengths ending at model.max_length "
                     f"({max_length}), e.g. '{max_length // 2},{max_length}'; '' = powers of two")
  return lengths


def example_length(example: Example) -> int:
  """Positions an example needs: its source, or its target with BOS/EOS added."""
  return max(len(example[0]), len(example[1]) + 1)


class BucketSchedule:
  """Which examples form global batch k, for every k: a pure function of (seed, k).

  Epoch e shuffles the examples (seeded by (seed, e)), puts each into the smallest bucket
  that holds it, keeping the shuffled order within a bucket, cuts every bucket into batches
  of batch_size (a bucket's last batch may be short; its rows are padded), and shuffles the
  batches. The bucket sizes do not change between epochs, so neither does batches_per_epoch.
  """

  def __init__(self, examples: Sequence[Example], batch_size: int, lengths: Sequence[int],
               seed: int):
    self.batch_size, self.lengths, self.seed = batch_size, tuple(lengths), seed
    needed = np.array([example_length(e) for e in examples])
    if len(needed) and needed.max() > self.lengths[-1]:
      raise ValueError(f"an example needs {needed.max()} positions; the largest bucket is "
                       f"{self.lengths[-1]} (drop over-length pairs first)")
    self.bucket_of = np.searchsorted(np.asarray(self.lengths), needed)
    counts = np.bincount(self.bucket_of, minlength=len(self.lengths))
    self.batches_per_epoch = int(sum(-(-c // batch_size) for c in counts))

  @functools.lru_cache(maxsize=2)
  def epoch(self, epoch: int) -> list[tuple[int, np.ndarray]]:
    """[(bucket length, example indices)] of one epoch, in the order they are served."""
    rng = np.random.default_rng([self.seed, epoch])
    order = rng.permutation(len(self.bucket_of))
    batches = []
    for bucket, length in enumerate(self.lengths):
      members = order[self.bucket_of[order] == bucket]
      batches += [(length, members[i:i + self.batch_size])
                  for i in range(0, len(members), self.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]

  def __getitem__(self, k: int) -> tuple[int, np.ndarray]:
    epoch, index = divmod(int(k), self.batches_per_epoch)
    return self.epoch(epoch)[index]


def _make_batch(k: int, schedule: BucketSchedule, examples: Sequence[Example], rows: slice
                ) -> dict:
  length, chosen = schedule[k]
  padded = pad_batch([examples[i] for i in chosen], length, schedule.batch_size)
  return {name: array[rows] for name, array in padded.items()}


class TrainIterator:
  """Endless bucketed batches through grain, reshuffled every epoch; the order is fixed by seed.

  Batch k depends only on (seed, k). The iterator is grain's DatasetIterator over the map
  k -> batch (read with worker threads and a prefetch buffer); `get_state` / `set_state`
  carry its position, so a restored iterator yields exactly what an uninterrupted one would.

  Multi-host: every process computes the same global schedule and keeps its own rows
  (process_index of process_count equal slices of each global batch), so all processes
  use the same padded length at every step.
  """

  def __init__(self, examples: Sequence[Example], batch_size: int, max_length: int, seed: int,
               *, lengths: Sequence[int] | None = None, num_threads: int = 2,
               prefetch: int = 16, process_index: int | None = None,
               process_count: int | None = None):
    if len(examples) < batch_size:
      raise ValueError(f"{len(examples)} training examples cannot fill a batch of {batch_size}")
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if batch_size % process_count:
      raise ValueError(f"batch_size {batch_size} is not a multiple of the {process_count} "
                       "processes")
    rows_per_process = batch_size // process_count
    rows = slice(process_index * rows_per_process, (process_index + 1) * rows_per_process)
    self.seed = seed
    self.schedule = BucketSchedule(examples, batch_size, lengths or bucket_lengths(max_length),
                                   seed)
    dataset = grain.MapDataset.range(2**62).map(
        functools.partial(_make_batch, schedule=self.schedule, examples=examples, rows=rows))
    self._iterator = iter(dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)))

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    return next(self._iterator)

  def get_state(self) -> dict:
    return {"grain": self._iterator.get_state(), "seed": self.seed}

  def set_state(self, state: dict):
    if state.get("seed") != self.seed:
      raise ValueError(f"iterator state was saved with seed {state.get('seed')}, not {self.seed}")
    if "grain" not in state:
      raise ValueError(f"iterator state {state} was not written by this pipeline")
    self._iterator.set_state(state["grain"])


def eval_batches(examples: Sequence[Example], batch_size: int, max_length: int
                 ) -> Iterator[tuple[dict, int]]:
  """Every example once, in order, as (batch, number of real rows); the last is padded."""
  for start in range(0, len(examples), batch_size):
    chunk = examples[start:start + batch_size]
    yield pad_batch(chunk, max_length, batch_size), len(chunk)
