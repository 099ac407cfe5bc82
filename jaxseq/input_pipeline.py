"""Token ids to padded batches: filtering, shuffling, padding.

A batch is a dict of int32 arrays, 0 = PAD:
  src      [batch, max_length]  source ids
  tgt_in   [batch, max_length]  BOS y_1 ... y_n   (decoder inputs)
  tgt_out  [batch, max_length]  y_1 ... y_n EOS   (what the decoder must predict)
Every batch has the same shape, so the jitted steps compile once.
"""

from collections.abc import Iterator, Sequence

import numpy as np

from jaxseq.vocab import BOS, EOS, PAD

Example = tuple[np.ndarray, np.ndarray]  # (source ids, target ids), no BOS/EOS


def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab, max_length: int
                 ) -> tuple[list[Example], int]:
  """Encodes text pairs; drops (and counts) those that do not fit max_length.

  A pair fits when the source has at most max_length tokens and the target, with
  EOS appended, also does. Empty sides are dropped too: they teach nothing.
  """
  examples, dropped = [], 0
  for src, tgt in pairs:
    s = np.asarray(src_vocab.encode(src), np.int32)
    t = np.asarray(tgt_vocab.encode(tgt), np.int32)
    if 0 < len(s) <= max_length and 0 < len(t) < max_length:
      examples.append((s, t))
    else:
      dropped += 1
  return examples, dropped


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


class TrainIterator:
  """Endless full batches, reshuffled every epoch; the order is fixed by seed.

  Batch k depends only on (seed, k), and `get_state` / `set_state` carry k (the same
  protocol as grain's DatasetIterator), so a restored iterator yields exactly what an
  uninterrupted one would have.
  """

  def __init__(self, examples: Sequence[Example], batch_size: int, max_length: int, seed: int):
    if len(examples) < batch_size:
      raise ValueError(f"{len(examples)} training examples cannot fill a batch of {batch_size}")
    self.examples, self.batch_size, self.max_length = examples, batch_size, max_length
    self.seed, self.position = seed, 0

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    per_epoch = len(self.examples) // self.batch_size
    epoch, index = divmod(self.position, per_epoch)
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
    chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
    self.position += 1
    return pad_batch([self.examples[i] for i in chosen], self.max_length, self.batch_size)

  def get_state(self) -> dict:
    return {"position": self.position, "seed": self.seed}

  def set_state(self, state: dict):
    if state.get("seed") != self.seed:
      raise ValueError(f"iterator state was saved with seed {state.get('seed')}, not {self.seed}")
    self.position = int(state["position"])


def eval_batches(examples: Sequence[Example], batch_size: int, max_length: int
                 ) -> Iterator[tuple[dict, int]]:
  """Every example once, in order, as (batch, number of real rows); the last is padded."""
  for start in range(0, len(examples), batch_size):
    chunk = examples[start:start + batch_size]
    yield pad_batch(chunk, max_length, batch_size), len(chunk)
