"""Sentences into fixed-shape batches and search results back into n-best lists.

Shared by the library's searches (`jaxseq/decoding/evaluation.py`) and by an exported translator
(`jaxseq/serving/artifact.py`), so it imports numpy and nothing of the model: a batch is
[batch_size, width] with width the power of two (at least 4, at most max_length) that
holds its longest source, so that a few compiled shapes serve every batch. Constraints
(phrases every output must contain, `jaxseq/decoding/constraints.py`) are stacked the same
way: to the smallest of a few sizes (`CONSTRAINT_SIZES`) that holds a batch's most
constraint tokens, and not at all for a batch without any.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from jaxseq.data.vocab import EOS, PAD

NEG_INF = -1e9  # the score of an empty beam slot; finite so that 0 * it is 0


class Hypothesis(NamedTuple):
  """One translation of one sentence."""

  ids: list[int]  # target token ids, without EOS
  score: float  # beam: log P / length penalty + coverage penalty; greedy, sampling: log P
  attention: np.ndarray  # [len(ids) (+ 1 for EOS when it ended), src_len]
  ended: bool  # whether it emitted EOS (else it hit the output limit)


class Output(NamedTuple):
  """One sentence's translation(s), best first (empty for an empty source, and for a
  sentence whose constraints the search could not meet: then `unmet` is true)."""

  nbest: list[Hypothesis]
  unmet: bool = False  # constrained, and no output met every phrase within the limit

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


# The sizes a batch's constraints are stacked to (max_constraint_tokens of the search):
# few sizes, so few compilations; the last is the most constraint tokens a sentence may have.
CONSTRAINT_SIZES = (4, 8, 16, 32)
MAX_CONSTRAINT_TOKENS = CONSTRAINT_SIZES[-1]


def constraint_tokens(phrases: Sequence[Sequence[int]]) -> int:
  """The constraint tokens of one sentence's phrases."""
  return sum(len(p) for p in phrases)


def constraint_width(most: int, sizes: Sequence[int] = CONSTRAINT_SIZES) -> int:
  """The smallest of sizes that holds `most` constraint tokens; ValueError past the last."""
  for size in sizes:
    if size >= most:
      return size
  raise ValueError(
    f"the constraints hold {most} tokens; at most {sizes[-1] if sizes else 0} constraint "
    "tokens are allowed"
  )


def stack_constraints(batch: Sequence[Sequence[Sequence[int]]], sizes: Sequence[int]) -> Any:
  """The `constraints.Constraints` (numpy fields [rows, size]) of one batch's phrases, or
  None when no row has any (the search without constraints)."""
  most = max((constraint_tokens(p) for p in batch), default=0)
  if not most:
    return None
  # Imported here: the constraints module imports JAX, which this module does not need.
  from jaxseq.decoding import constraints

  return constraints.stack(batch, constraint_width(most, sizes))


class SearchResult(NamedTuple):
  """One batch's outputs (numpy), the n outputs of a row best first."""

  tokens: np.ndarray  # [batch, n, max_len] int32, EOS included (when produced), then PAD
  lengths: np.ndarray  # [batch, n] tokens before EOS
  scores: np.ndarray  # [batch, n]; NEG_INF where a beam found fewer
  attention: np.ndarray  # [batch, n, max_len, width]


class Batch(NamedTuple):
  """One padded batch of sources and what their outputs must hold."""

  src: np.ndarray  # [batch, width] int32
  prefix: np.ndarray | None  # [batch, prefix_width] int32, or None: no row has a prefix
  rows: np.ndarray  # [batch] each row's index among the sources, 0 for padding rows
  constraints: Any = None  # constraints.Constraints ([batch, size] fields) or None


# A batch -> its SearchResult.
SearchBatch = Callable[[Batch], SearchResult]


class Constrained(NamedTuple):
  """Per source, the phrases (target id lists) every output must contain, and the sizes
  a batch's constraints are stacked to (see `constraint_width`)."""

  phrases: Sequence[Sequence[Sequence[int]]]
  sizes: Sequence[int] = CONSTRAINT_SIZES


def translate_in_batches(
  sources: list[np.ndarray],
  search_batch: SearchBatch,
  *,
  batch_size: int,
  max_length: int,
  prefixes: list[list[int]] | None = None,
  constrained: Constrained | None = None,
  progress: str | None = None,
) -> list[Output]:
  """Translates source id arrays (each 1..max_length ids) batch by batch, in input order.

  Sentences are batched by source length (and put back in order): the encoder then reads
  little padding, and a batch's decoding loop, which runs until its longest output ends,
  wastes few steps. prefixes: per source, target ids every output must start with.
  constrained: per source, phrases every output must contain; sentences with constraints
  are batched apart from those without, which keep the search without constraints.
  """
  prefixes = prefixes if prefixes is not None else [[] for _ in sources]
  phrases = constrained.phrases if constrained is not None else [[] for _ in sources]
  sizes = constrained.sizes if constrained is not None else CONSTRAINT_SIZES
  has = [bool(constraint_tokens(p)) for p in phrases]
  for p in phrases:
    if constraint_tokens(p):
      constraint_width(constraint_tokens(p), sizes)  # too many tokens: ValueError, up front
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
  # Batches never mix sentences with and without constraints.
  chunks = []
  for group in ([i for i in order if not has[i]], [i for i in order if has[i]]):
    chunks += [group[s : s + batch_size] for s in range(0, len(group), batch_size)]
  for chunk in chunks:
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
    cons = stack_constraints([phrases[i] for i in chunk] + [[]] * (batch_size - len(chunk)), sizes)
    tokens, lengths, scores, attn = search_batch(Batch(src, prefix, rows, cons))
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
      outputs[i] = Output(found, unmet=has[i] and not found)
    bar.update(len(chunk))
  bar.close()
  return [outputs[i] for i in range(len(sources))]
