"""Sentences into fixed-shape batches and search results back into n-best lists.

Shared by the library's searches (`jaxseq/decoding/evaluation.py`) and by an exported translator
(`jaxseq/serving/artifact.py`), so it imports numpy and nothing of the model: a batch is
[batch_size, width] with width the power of two (at least 4, at most max_length) that
holds its longest source, so that a few compiled shapes serve every batch.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from jaxseq.data.vocab import EOS, PAD

NEG_INF = -1e9  # the score of an empty beam slot; finite so that 0 * it is 0


class Hypothesis(NamedTuple):
  """One translation of one sentence."""

  ids: list[int]  # target token ids, without EOS
  score: float  # beam: log P / length penalty; greedy and sampling: log P
  attention: np.ndarray  # [len(ids) (+ 1 for EOS when it ended), src_len]
  ended: bool  # whether it emitted EOS (else it hit the output limit)


class Output(NamedTuple):
  """One sentence's translation(s), best first (empty for an empty source)."""

  nbest: list[Hypothesis]

  @property
  def best(self) -> Hypothesis | None:
    return self.nbest[0] if self.nbest else None


def padded_sizes(first: int, factor: int, last: int) -> list[int]:
  """The sizes a dimension is padded to: first, first * factor, ... while below last, then
  last. Few sizes, so few compilations, and little padding in each."""
  sizes, size = [], first
  while size < last:
    sizes.append(size)
    size *= factor
  return sizes + [last]


def source_width(longest: int, max_length: int) -> int:
  """The padded source width of a batch: a power of two >= longest, in [4, max_length]."""
  width = 4
  while width < longest:
    width *= 2
  return min(width, max_length)


def widths(max_length: int) -> list[int]:
  """Every width `source_width` gives for sources of 1..max_length tokens."""
  return padded_sizes(4, 2, max_length)


class SearchResult(NamedTuple):
  """One batch's outputs (numpy), the n outputs of a row best first."""

  tokens: np.ndarray  # [batch, n, max_len] int32, EOS included (when produced), then PAD
  lengths: np.ndarray  # [batch, n] tokens before EOS
  scores: np.ndarray  # [batch, n]; NEG_INF where a beam found fewer
  attention: np.ndarray  # [batch, n, max_len, width]


# (src [batch, width], prefix [batch, prefix_width] or None, rows [batch]: each row's index
# among the sources, 0 for padding rows) -> the batch's SearchResult.
SearchBatch = Callable[[np.ndarray, np.ndarray | None, np.ndarray], SearchResult]


def translate_in_batches(
  sources: list[np.ndarray],
  search_batch: SearchBatch,
  *,
  batch_size: int,
  max_length: int,
  prefixes: list[list[int]] | None = None,
  progress: str | None = None,
) -> list[Output]:
  """Translates source id arrays (each 1..max_length ids) batch by batch, in input order.

  Sentences are batched by source length (and put back in order): the encoder then reads
  little padding, and a batch's decoding loop, which runs until its longest output ends,
  wastes few steps. prefixes: per source, target ids every output must start with.
  """
  prefixes = prefixes if prefixes is not None else [[] for _ in sources]
  order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
  outputs = {}
  bar = tqdm(
    total=len(sources),
    desc=progress,
    unit="sent",
    leave=False,
    disable=progress is None,
    dynamic_ncols=True,
  )
  for start in range(0, len(sources), batch_size):
    chunk = order[start : start + batch_size]
    width = source_width(max(len(sources[i]) for i in chunk), max_length)
    src = np.full((batch_size, width), PAD, np.int32)
    for row, i in enumerate(chunk):
      src[row, : len(sources[i])] = sources[i]
    prefix = None
    longest_prefix = max(len(prefixes[i]) for i in chunk)
    if longest_prefix:
      prefix = np.full((batch_size, source_width(longest_prefix, max_length)), PAD, np.int32)
      for row, i in enumerate(chunk):
        prefix[row, : len(prefixes[i])] = prefixes[i]
    rows = np.asarray(list(chunk) + [0] * (batch_size - len(chunk)), np.int32)
    tokens, lengths, scores, attn = search_batch(src, prefix, rows)  # a SearchResult
    for row, i in enumerate(chunk):
      found = []
      for r in range(tokens.shape[1]):
        if scores[row, r] <= NEG_INF / 2:  # a beam slot left empty
          continue
        n = int(lengths[row, r])
        ended = n < tokens.shape[-1] and tokens[row, r, n] == EOS
        found.append(
          Hypothesis(
            tokens[row, r, :n].tolist(),
            float(scores[row, r]),
            attn[row, r, : n + int(ended), : len(sources[i])],
            bool(ended),
          )
        )
      outputs[i] = Output(found)
    bar.update(len(chunk))
  bar.close()
  return [outputs[i] for i in range(len(sources))]
