"""Lexically constrained beam search: phrases every output must contain.

A constraint is a phrase of one or more target tokens that must appear, contiguously, in
the output. The search keeps its fixed beam and its fixed shapes, and allocates the beam
dynamically by progress:

- Representation (`Constraints`, one sentence): the phrases' tokens one after another in a
  [C] array (C = max_constraint_tokens, a static size), PAD after the last one, with each
  token's phrase index (-1 on padding) and its position in its phrase. `from_phrases`
  builds it from token-id lists, `stack` a batch ([batch, C] fields).
- Tracking (`Progress`, one hypothesis): `matching[i]` says that the output ends with the
  first tokens of token i's phrase, up to and including token i (a shift-and matcher over
  all phrases at once, so an abandoned partial match loses its progress and a new one may
  begin on the same token); `met[i]` says that the output contains token i's whole phrase.
  `advance` updates both for a chosen token. A hypothesis's progress (`met_count`) is the
  number of tokens of the phrases it contains plus its longest partial match of a phrase it
  does not contain yet; it equals the number of constraint tokens exactly when every phrase
  is met.
- Candidates (`candidates`): at each step, the usual best extensions of the whole beam
  (top k over beam x vocabulary), each hypothesis's own best token, and, for each
  hypothesis, every token that begins a phrase it does not contain or continues one of its
  partial matches; the same extension proposed twice counts once.
- Banks (`allocate`): candidates are grouped by progress (bank b holds those with b
  constraint tokens met). Beam slots are filled round by round: round r takes the r-th best
  candidate of every non-empty bank, best score first, until the beam is full. With enough
  candidates each of the n + 1 banks (n constraint tokens) gets beam / (n + 1) slots,
  rounded, and the slots of empty or short banks go to the others.
- Finishing: a hypothesis may emit EOS only once every phrase is met, and a candidate
  that cannot meet them within the output limit (`needed`: one unmet phrase lacks more
  tokens than the positions left) is dropped, so every output the search returns contains
  every phrase. A sentence whose constraints cannot be met within the output limit (or are
  lost by the beam) gets no output: its n-best slots keep score and log-probability NEG_INF
  and PAD tokens (a NEG_INF score marks an empty slot, as without constraints).

A sentence with no constraint tokens is searched exactly as without constraints (see
`jaxseq/decoding/beam_search.py`).

Reference:
  Post & Vilar 2018, "Fast Lexically Constrained Decoding with Dynamic Beam Allocation for
    Neural Machine Translation", NAACL.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseq.data.vocab import BOS, EOS, PAD

Array = jax.Array
NEG_INF = -1e9  # as batching.NEG_INF: the log-probability of an impossible candidate


class Constraints(NamedTuple):
  """The phrases of one sentence (or, stacked, of a batch: a leading [batch] axis); numpy
  arrays as built, jax arrays inside the search."""

  tokens: Array | np.ndarray  # [C] int32, the phrases' tokens one after another, then PAD
  phrase: Array | np.ndarray  # [C] int32, the index of each token's phrase; -1 on padding
  position: Array | np.ndarray  # [C] int32, its position in its phrase (0 first); 0 on padding


class Progress(NamedTuple):
  """How far one hypothesis has met its sentence's constraints."""

  matching: Array  # [C] bool: the output ends with its phrase's tokens up to this one
  met: Array  # [C] bool: the output contains this token's whole phrase


def from_phrases(
  phrases: Sequence[Sequence[int]], max_tokens: int, vocab_size: int | None = None
) -> Constraints:
  """Constraints (numpy fields of shape [max_tokens]) from phrases of target token ids.

  Each phrase must be non-empty and hold no PAD, BOS or EOS (nor an id outside the target
  vocabulary, when `vocab_size` is given); all phrases together hold at most `max_tokens`
  tokens. No phrases gives a sentence without constraints. A phrase given twice is met
  by one occurrence.
  """
  if max_tokens < 1:
    raise ValueError(f"max_constraint_tokens must be at least 1, got {max_tokens}")
  tokens = np.full((max_tokens,), PAD, np.int32)
  phrase = np.full((max_tokens,), -1, np.int32)
  position = np.zeros((max_tokens,), np.int32)
  total = sum(len(p) for p in phrases)
  if total > max_tokens:
    raise ValueError(
      f"the constraints hold {total} tokens, more than max_constraint_tokens={max_tokens}"
    )
  at = 0
  for index, ids in enumerate(phrases):
    ids = [int(i) for i in ids]
    if not ids:
      raise ValueError(f"constraint phrase {index} is empty")
    bad = [i for i in ids if i in (PAD, BOS, EOS) or i < 0]
    if bad:
      raise ValueError(
        f"constraint phrase {index} holds token id {bad[0]}; PAD, BOS, EOS and negative ids "
        "cannot be constraints"
      )
    if vocab_size is not None and max(ids) >= vocab_size:
      raise ValueError(
        f"constraint phrase {index} holds token id {max(ids)}, outside the target vocabulary "
        f"of {vocab_size}"
      )
    tokens[at : at + len(ids)] = ids
    phrase[at : at + len(ids)] = index
    position[at : at + len(ids)] = np.arange(len(ids))
    at += len(ids)
  return Constraints(tokens, phrase, position)


def stack(
  batch: Sequence[Sequence[Sequence[int]]], max_tokens: int, vocab_size: int | None = None
) -> Constraints:
  """One sentence's phrases per row (see `from_phrases`) -> Constraints with a leading
  [batch] axis."""
  rows = [from_phrases(phrases, max_tokens, vocab_size) for phrases in batch]
  return Constraints(*(np.stack(field) for field in zip(*rows)))


def has_any(cons: Constraints) -> Array:
  """Whether the sentence has a constraint token at all ([] bool)."""
  return jnp.any(_valid(cons))


def start(cons: Constraints) -> Progress:
  """The progress of an empty output: nothing matched, nothing met."""
  nothing = jnp.zeros(cons.tokens.shape, bool)
  return Progress(matching=nothing, met=nothing)


def _valid(cons: Constraints) -> Array:
  """[C] bool: a constraint token, not padding."""
  return jnp.asarray(cons.phrase) >= 0


def _starts(cons: Constraints) -> Array:
  """[C] bool: the first token of each phrase."""
  return _valid(cons) & (jnp.asarray(cons.position) == 0)


def _lasts(cons: Constraints) -> Array:
  """[C] bool: the last token of each phrase."""
  position = jnp.asarray(cons.position)
  following = jnp.concatenate([position[1:], jnp.zeros((1,), position.dtype)])
  return _valid(cons) & (following == 0)


def _same_phrase(cons: Constraints) -> Array:
  """[C, C] bool: tokens i and j belong to the same phrase."""
  phrase = jnp.asarray(cons.phrase)
  return (phrase[:, None] == phrase[None, :]) & (phrase[None, :] >= 0)


def _after_match(progress: Progress) -> Array:
  """[C] bool: the token before this one (in the array) is matched at the output's end."""
  return jnp.concatenate([jnp.zeros((1,), bool), progress.matching[:-1]])


def advance(cons: Constraints, progress: Progress, token: Array) -> Progress:
  """The progress after the output grows by `token` ([] int)."""
  # A token matches when it begins its phrase or extends a match of its predecessor; a
  # phrase's first token never reads its predecessor (another phrase's last token).
  matches = (jnp.asarray(cons.tokens) == token) & _valid(cons)
  matching = matches & (_starts(cons) | _after_match(progress))
  completed = matching & _lasts(cons)
  met = progress.met | jnp.any(_same_phrase(cons) & completed[None, :], axis=1)
  return Progress(matching=matching, met=met)


def met_count(cons: Constraints, progress: Progress) -> Array:
  """[] int32: tokens of the phrases met plus the longest partial match of an unmet one."""
  met = jnp.sum(progress.met & _valid(cons)).astype(jnp.int32)
  partial = jnp.where(progress.matching & ~progress.met, jnp.asarray(cons.position) + 1, 0)
  return met + jnp.max(partial).astype(jnp.int32)


def all_met(cons: Constraints, progress: Progress) -> Array:
  """[] bool: the output contains every phrase (true without constraints)."""
  return jnp.all(progress.met | ~_valid(cons))


def needed(cons: Constraints, progress: Progress) -> Array:
  """[] int32: a lower bound on the tokens the output still needs to meet every phrase, the
  most that any one unmet phrase lacks after its longest partial match (phrases may overlap
  in the output, so their needs do not add up)."""
  valid = _valid(cons)
  same = _same_phrase(cons)
  length = jnp.sum(same, axis=1)  # [C] the length of each token's phrase
  matched = jnp.where(progress.matching, jnp.asarray(cons.position) + 1, 0)
  partial = jnp.max(jnp.where(same, matched[None, :], 0), axis=1)  # [C] per phrase
  lacking = jnp.where(valid & ~progress.met, length - partial, 0)
  return jnp.max(lacking).astype(jnp.int32)


def next_tokens(cons: Constraints, progress: Progress) -> tuple[Array, Array]:
  """(tokens [C], useful [C] bool): the tokens that begin a phrase not met yet or continue
  a partial match of one."""
  useful = _valid(cons) & ~progress.met & (_starts(cons) | _after_match(progress))
  return jnp.asarray(cons.tokens), useful


def candidates(
  cons: Constraints, progress: Progress, log_probs: Array, k: int
) -> tuple[Array, Array, Array]:
  """The extensions a step considers, for one sentence's beam.

  progress: a Progress with a leading [beam] axis; log_probs: [beam, vocab], each
  hypothesis's log P plus the step's (impossible extensions at NEG_INF), EOS included even
  where the constraints close it. Returns (origin [n], token [n], log P [n]) with
  n = k + beam + beam * C: the top k over the whole beam (fewer where EOS is closed), each
  hypothesis's best token (other than EOS where closed), and each hypothesis's
  `next_tokens`. A candidate that repeats an earlier possible one, that is not useful, or
  that ends a hypothesis with unmet phrases has log P NEG_INF.
  """
  beam, vocab = log_probs.shape
  open_eos = jax.vmap(all_met, in_axes=(None, 0))(cons, progress)  # [beam]
  # The same top k as the search without constraints (one computation for both).
  top_log_probs, flat = lax.top_k(log_probs.reshape(-1), k)
  top_origin, top_token = flat // vocab, flat % vocab
  top_log_probs = jnp.where((top_token == EOS) & ~open_eos[top_origin], NEG_INF, top_log_probs)
  rows = jnp.arange(beam)
  # Each hypothesis's best token, EOS only where open (top_k: faster than argmax on CPU).
  closed = (jnp.arange(vocab) == EOS)[None, :] & ~open_eos[:, None]
  best_log_prob, best_token = lax.top_k(jnp.where(closed, NEG_INF, log_probs), 1)
  best_log_prob, best_token = best_log_prob[:, 0], best_token[:, 0]
  cons_token, useful = jax.vmap(next_tokens, in_axes=(None, 0))(cons, progress)  # [beam, C]
  useful = useful & (cons_token < vocab) & (cons_token != EOS)  # never met
  cons_token = jnp.minimum(cons_token, vocab - 1)
  cons_log_probs = jnp.take_along_axis(log_probs, cons_token, axis=-1)
  cons_log_probs = jnp.where(useful, cons_log_probs, NEG_INF)
  size = cons_token.shape[1]
  origin = jnp.concatenate([top_origin, rows, jnp.repeat(rows, size)]).astype(jnp.int32)
  token = jnp.concatenate([top_token, best_token, cons_token.reshape(-1)]).astype(jnp.int32)
  cand_log_probs = jnp.concatenate([top_log_probs, best_log_prob, cons_log_probs.reshape(-1)])
  # Equal extensions have equal log P, unless one was set aside as not useful.
  key = origin * vocab + token
  n = key.shape[0]
  earlier = (jnp.arange(n)[None, :] < jnp.arange(n)[:, None]) & (cand_log_probs > NEG_INF / 2)
  repeated = jnp.any((key[:, None] == key[None, :]) & earlier, axis=1)
  return origin, token, jnp.where(repeated, NEG_INF, cand_log_probs)


def allocate(log_probs: Array, banks: Array, beam_size: int) -> Array:
  """The candidates a beam of `beam_size` keeps, by dynamic beam allocation.

  log_probs: [n] (NEG_INF: not a candidate); banks: [n] int, each candidate's constraint
  tokens met. Round r takes the r-th best candidate of every bank, best score first;
  rounds follow one another until the beam is full. Returns [beam_size] indices into the
  candidates in that order, real ones first (then, when there are fewer than beam_size,
  impossible ones). Ties keep the candidates' order.
  """
  n = log_probs.shape[0]
  real = log_probs > NEG_INF / 2
  index = jnp.arange(n)
  better = (log_probs[None, :] > log_probs[:, None]) | (
    (log_probs[None, :] == log_probs[:, None]) & (index[None, :] < index[:, None])
  )
  same_bank = (banks[None, :] == banks[:, None]) & real[None, :]
  rank = jnp.sum(same_bank & better, axis=1)  # [n] place in its bank, 0 = best
  order = jnp.lexsort((-log_probs, rank, ~real))
  return order[:beam_size]
