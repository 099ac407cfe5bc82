"""Token ids to padded batches: streaming, filtering, seeded shuffling, length buckets, sharding.

A batch is a dict of int32 arrays, 0 = PAD, all three of one padded length L:
  src      [batch, L]  source ids
  tgt_in   [batch, L]  BOS y_1 ... y_n   (decoder inputs)
  tgt_out  [batch, L]  y_1 ... y_n EOS   (what the decoder must predict)
Training batches take L from a small fixed set (`bucket_lengths`: 8, 16, 32, ... up to
model.max_length), so the jitted step compiles once per bucket and never again; every
training batch is full. Held-out batches use L = max_length (rows past the examples stay
PAD and carry no loss).
"""

import bisect
import collections
import functools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import grain
import jax
import numpy as np

from jaxseq.data.vocab import BOS, EOS, PAD
from jaxseq.decoding import batching

Example = tuple[np.ndarray, np.ndarray]  # (source ids, target ids), no BOS/EOS


class SubwordSampling(NamedTuple):
  """config.data.subword_alpha and subword_nbest, and the seed of the draws: a pair read at
  position p of the training stream is segmented with the generator seeded by (seed, p),
  so the stream stays a pure function of the seed, resumed or not."""

  alpha: float
  nbest: int
  seed: int


def encode_indexed(
  pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab, max_length: int
) -> tuple[list[Example], list[int]]:
  """Encodes the pairs that fit; returns them with their indices into pairs.

  A pair fits when the source has at most max_length tokens and the target, with
  EOS appended, also does. Empty sides are dropped too: they teach nothing.
  """
  examples, kept = [], []
  for index, (src, tgt) in enumerate(pairs):
    example = (
      np.asarray(src_vocab.encode(src), np.int32),
      np.asarray(tgt_vocab.encode(tgt), np.int32),
    )
    if fits(example, max_length):
      examples.append(example)
      kept.append(index)
  return examples, kept


def encode_pairs(
  pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab, max_length: int
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
    src[row, : len(s)] = s
    tgt_in[row, 0] = BOS
    tgt_in[row, 1 : len(t) + 1] = t
    tgt_out[row, : len(t)] = t
    tgt_out[row, len(t)] = EOS
  return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}


def bucket_lengths(max_length: int, smallest: int = 8) -> tuple[int, ...]:
  """Padded lengths of training batches: powers of two from smallest, then max_length."""
  return tuple(batching.padded_sizes(smallest, 2, max_length))


def train_lengths(text: str, max_length: int) -> tuple[int, ...]:
  """config.bucket_lengths: "" gives bucket_lengths(max_length); else comma-separated
  lengths, increasing, the last max_length. Raises ValueError otherwise."""
  if not text.strip():
    return bucket_lengths(max_length)
  try:
    lengths = tuple(int(t) for t in text.split(","))
  except ValueError:
    lengths = ()
  if (
    not lengths
    or lengths[0] < 1
    or lengths[-1] != max_length
    or any(a >= b for a, b in zip(lengths, lengths[1:]))
  ):
    raise ValueError(
      f"comma-separated increasing lengths ending at model.max_length "
      f"({max_length}), e.g. '{max_length // 2},{max_length}'; '' = powers of two"
    )
  return lengths


def example_length(example: Example) -> int:
  """Positions an example needs: its source, or its target with BOS/EOS added."""
  return max(len(example[0]), len(example[1]) + 1)


def fits(example: Example, max_length: int) -> bool:
  """Whether an example trains (see encode_indexed): no empty side, nothing over max_length."""
  src, tgt = example
  return 0 < len(src) <= max_length and 0 < len(tgt) < max_length


class EncodedPairs(Sequence):
  """Text pairs as token ids, encoded when read: example i is (src ids, tgt ids) of pairs[i].

  With `sampling`, a read at a known stream position (`take`'s positions) segments both
  sides by `encode_sampled`; every other read, and evaluation, uses the best segmentation.
  """

  def __init__(
    self,
    pairs: Sequence[tuple[str, str]],
    src_vocab,
    tgt_vocab,
    sampling: SubwordSampling | None = None,
  ):
    self.pairs, self.src_vocab, self.tgt_vocab = pairs, src_vocab, tgt_vocab
    self.sampling = sampling

  def __len__(self) -> int:
    return len(self.pairs)

  def _encode(self, pair: tuple[str, str], position: int | None = None) -> Example:
    if self.sampling is None or position is None:
      sides = self.src_vocab.encode(pair[0]), self.tgt_vocab.encode(pair[1])
    else:
      alpha, nbest, seed = self.sampling
      rng = np.random.default_rng((seed, position))
      sides = (
        self.src_vocab.encode_sampled(pair[0], rng, alpha, nbest),
        self.tgt_vocab.encode_sampled(pair[1], rng, alpha, nbest),
      )
    return np.asarray(sides[0], np.int32), np.asarray(sides[1], np.int32)

  def __getitem__(self, index: int) -> Example:  # type: ignore[override]  # no slices
    return self._encode(self.pairs[index])

  def take(
    self, indices: Sequence[int], positions: Sequence[int | None] | None = None
  ) -> list[Example]:
    """The examples at these indices, read at these stream positions (None: unknown); the
    pairs are read in one call where they can be."""
    take = getattr(self.pairs, "take", None)
    pairs = take(indices) if take else [self.pairs[i] for i in indices]
    positions = positions if positions is not None else [None] * len(pairs)
    return [self._encode(pair, position) for pair, position in zip(pairs, positions)]


def take(
  examples: Sequence[Example],
  indices: Sequence[int] | np.ndarray,
  positions: Sequence[int | None] | None = None,
) -> list[Example]:
  """examples[i] for each index, in one batched read where the sequence offers `take` (and
  read at the given stream positions, where it samples its segmentations)."""
  indices = [int(i) for i in indices]
  batched = getattr(examples, "take", None)
  if batched is None:
    return [examples[i] for i in indices]
  return batched(indices) if positions is None else batched(indices, positions)


# Examples read and encoded per grain element, in one batched random read. A read of the
# array_record files has a fixed cost that grows with the number of shard files (a thread
# per file); at 5 M pairs (8 shards) a read of 64 costs 460 us per example, of 1,024 60 us.
# The order of the examples does not depend on it.
CHUNK = 1024


# An example read from the stream: (stream position, index into the examples), and what
# was read. The position seeds its subword sampling; restored states from before positions
# were kept hold bare indices (position None), and train without sampling.
Key = tuple[int | None, int]


def _read_chunk(chunk: tuple[np.ndarray, np.ndarray], examples) -> list[tuple[Key, Example]]:
  positions, indices = chunk[0].tolist(), chunk[1].tolist()
  return list(zip(zip(positions, indices), take(examples, indices, positions)))


def _reread(examples: Sequence[Example], keys: list) -> list[tuple[Key, Example]]:
  """The examples of saved keys, read again as they were read: [position, index] pairs, or
  bare indices (saved before positions were kept)."""
  pairs: list[Key] = [(None, k) if isinstance(k, int) else (k[0], k[1]) for k in keys]
  if any(position is None for position, _ in pairs) and getattr(examples, "sampling", None):
    raise ValueError("an iterator state without stream positions cannot resume subword sampling")
  positions = [position for position, _ in pairs]
  indices = [index for _, index in pairs]
  has_positions = all(position is not None for position in positions)
  return list(zip(pairs, take(examples, indices, positions if has_positions else None)))


class _BucketIterator(grain.DatasetIterator):
  """Chunks of indexed examples in -> full batches out, each of the smallest bucket length
  that holds its rows. An example waits in its bucket's buffer until batch_size of them are
  there; one that does not fit is skipped. The state is the parent's, and the indices of
  the examples read but not yet served (the rest of the current chunk, the buffers), which
  are read again on restore."""

  def __init__(
    self,
    parent,
    examples: Sequence[Example],
    batch_size: int,
    lengths: tuple[int, ...],
    rows: slice,
  ):
    super().__init__(parent)
    self._examples, self._batch_size, self._lengths, self._rows = (
      examples,
      batch_size,
      lengths,
      rows,
    )
    self._pending: collections.deque[tuple[Key, Example]] = collections.deque()
    self._buffers: list[list[tuple[Key, Example]]] = [[] for _ in lengths]
    self.skipped = 0

  def __next__(self) -> dict:
    in_a_row = 0
    while True:
      if not self._pending:
        self._pending.extend(next(self._parent))
      key, example = self._pending.popleft()
      if not fits(example, self._lengths[-1]):
        self.skipped += 1
        in_a_row += 1
        if in_a_row > len(self._examples):
          raise ValueError(
            f"no training pair fits model.max_length={self._lengths[-1]} "
            "(a side is empty or too long in every pair)"
          )
        continue
      in_a_row = 0
      bucket = bisect.bisect_left(self._lengths, example_length(example))
      buffer = self._buffers[bucket]
      buffer.append((key, example))
      if len(buffer) == self._batch_size:
        self._buffers[bucket] = []
        batch = pad_batch([e for _, e in buffer], self._lengths[bucket], self._batch_size)
        return {name: array[self._rows] for name, array in batch.items()}

  def get_state(self) -> dict:
    return {
      "parent": self._parent.get_state(),
      "skipped": self.skipped,
      "pending": [list(key) for key, _ in self._pending],
      "buffers": [[list(key) for key, _ in buffer] for buffer in self._buffers],
    }

  def set_state(self, state: dict):
    self._parent.set_state(state["parent"])
    self.skipped = state["skipped"]
    self._pending = collections.deque(_reread(self._examples, state["pending"]))
    self._buffers = [_reread(self._examples, buffer) for buffer in state["buffers"]]


class _BucketDataset(grain.IterDataset):
  def __init__(self, parent, examples, batch_size, lengths, rows):
    super().__init__(parent)
    self._args = examples, batch_size, lengths, rows

  def __iter__(self) -> _BucketIterator:
    return _BucketIterator(self._parent.__iter__(), *self._args)


class TrainIterator:
  """Endless bucketed batches read through grain from a random-access sequence of examples.

  The examples (`EncodedPairs` over the prepared array_record files, or any sequence) are
  never read whole: grain shuffles their indices globally and lazily, a new order every
  epoch (`MapDataset.shuffle` then `repeat`), reads and encodes them in chunks of CHUNK
  (one batched random read each) in worker threads ahead of the consumer (`prefetch`
  chunks), and `_BucketIterator` groups them by length into full batches of
  fixed shapes. Memory is the buffers (at most batch_size examples per bucket) and the
  prefetch, whatever the corpus size. The stream is a pure function of the seed and the
  examples; `get_state` / `set_state` carry the position, so a restored iterator yields
  exactly what an uninterrupted one would.

  Multi-host: every process reads the same global stream and keeps its own rows
  (process_index of process_count equal slices of each global batch), so all processes
  use the same padded length at every step.
  """

  def __init__(
    self,
    examples: Sequence[Example],
    batch_size: int,
    max_length: int,
    seed: int,
    *,
    lengths: Sequence[int] | None = None,
    num_threads: int = 2,
    prefetch: int = 4,
    process_index: int | None = None,
    process_count: int | None = None,
  ):
    if len(examples) < batch_size:
      raise ValueError(f"{len(examples)} training examples cannot fill a batch of {batch_size}")
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if batch_size % process_count:
      raise ValueError(
        f"batch_size {batch_size} is not a multiple of the {process_count} processes"
      )
    rows_per_process = batch_size // process_count
    rows = slice(process_index * rows_per_process, (process_index + 1) * rows_per_process)
    self.seed = seed
    lengths = tuple(lengths or bucket_lengths(max_length))
    if lengths[-1] != max_length:
      raise ValueError(f"the largest bucket {lengths[-1]} is not max_length {max_length}")
    chunks = (
      grain.MapDataset.range(len(examples))
      .shuffle(seed=seed)
      .repeat()
      .map_with_index(lambda position, index: (position, index))
      .batch(CHUNK)
      .map(functools.partial(_read_chunk, examples=examples))
    )
    read = chunks.to_iter_dataset(
      grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    )
    self._iterator = iter(_BucketDataset(read, examples, batch_size, lengths, rows))

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    return next(self._iterator)

  @property
  def skipped(self) -> int:
    """Examples read so far that do not fit max_length (or have an empty side)."""
    return self._iterator.skipped

  def get_state(self) -> dict:
    return {"grain": self._iterator.get_state(), "seed": self.seed}

  def set_state(self, state: dict):
    if state.get("seed") != self.seed:
      raise ValueError(f"iterator state was saved with seed {state.get('seed')}, not {self.seed}")
    if "grain" not in state or "buffers" not in state["grain"]:
      raise ValueError(f"iterator state {state} was not written by this pipeline")
    self._iterator.set_state(state["grain"])


def eval_batches(
  examples: Sequence[Example], batch_size: int, max_length: int
) -> Iterator[tuple[dict, int]]:
  """Every example once, in order, as (batch, number of real rows); the last is padded."""
  for start in range(0, len(examples), batch_size):
    chunk = examples[start : start + batch_size]
    yield pad_batch(chunk, max_length, batch_size), len(chunk)
