"""Beam search as it was before the coverage penalty, kept as a reference for tests.

A copy of jaxseq/decoding/beam_search.py from before `Beam.coverage_penalty` existed
(its search loop, the constrained loop and the finished scores, unchanged);
tests/test_coverage_penalty.py checks that the library's search with a coverage penalty
of 0 returns exactly this one's outputs (tokens, lengths, scores, log-probabilities and
attention, bit for bit).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxseq.data.vocab import BOS, EOS, PAD
from jaxseq.decoding import batching, decode, ensemble
from jaxseq.decoding import constraints as constraints_lib

Array = jax.Array
NEG_INF = batching.NEG_INF  # a log-probability no real hypothesis reaches


class BeamResult(NamedTuple):
  """The n-best list of one sentence, best first."""

  tokens: Array  # [nbest, max_len] int32, EOS included (when produced), then PAD
  lengths: Array  # [nbest] int32, tokens before EOS
  scores: Array  # [nbest] log P / length penalty; NEG_INF where fewer were found
  log_probs: Array  # [nbest] log P(Y | X), no penalty
  attention: Array  # [nbest, max_len, src_len] attention of each, zero after its end


class _Loop(NamedTuple):
  """The while_loop carry; `alive` rows are hypotheses still growing."""

  t: Array  # [] next output position
  alive_tokens: Array  # [beam, max_len]
  alive_log_probs: Array  # [beam]
  alive_attn: Array  # [beam, max_len, src_len]
  alive_state: tuple  # DecoderState with a leading [beam] axis (attention state too)
  fin_tokens: Array  # [beam, max_len]
  fin_scores: Array  # [beam] penalised scores, NEG_INF on empty slots
  fin_log_probs: Array  # [beam]
  fin_lengths: Array  # [beam] output tokens counted by the penalty (EOS included)
  fin_attn: Array  # [beam, max_len, src_len]


def length_penalty(length: Array, alpha: float | Array) -> Array:
  """GNMT lp(Y) = ((5 + |Y|) / 6) ** alpha; 1 for alpha = 0."""
  return ((5.0 + length) / 6.0) ** alpha


def output_limit(src: Array, max_len: int, ratio: float | Array, offset: int | Array) -> Array:
  """Longest output (EOS included) for a source: ratio * src tokens + offset, in [1, max_len]."""
  src_len = jnp.sum(src != PAD)
  limit = jnp.floor(ratio * src_len).astype(jnp.int32) + offset
  return jnp.clip(limit, 1, max_len)


class Beam(NamedTuple):
  """What one beam search keeps and how it ranks and stops. beam_size, max_len and nbest
  fix shapes (static under jit); alpha and the output limit may be traced."""

  beam_size: int
  max_len: int  # output positions, EOS included
  nbest: int = 1  # outputs returned, in [1, beam_size]
  alpha: float | Array = 0.0  # GNMT length penalty; 0 = none
  max_length_ratio: float | Array | None = None  # None: every output may reach max_len
  max_length_offset: int | Array = 0


def _extensions(alive_log_probs: Array, step_log_probs: Array, prefix, t: Array) -> Array:
  """log P of every one-token extension of every live hypothesis, [beam, vocab]; within the
  prefix only the forced token (the others cannot win)."""
  forced, forced_tok = decode.forced_token(prefix, t)
  allowed = ~forced | (jnp.arange(step_log_probs.shape[-1]) == forced_tok)
  return alive_log_probs[:, None] + jnp.where(allowed, step_log_probs, NEG_INF)


def beam_search(
  model,
  params,
  src: Array,
  beam: Beam,
  prefix: Array | None = None,
  constraints: constraints_lib.Constraints | None = None,
) -> BeamResult:
  """The `beam.nbest` best outputs of one sentence under log P(Y | X) / lp(Y).

  A hypothesis ends when it emits EOS, or when it reaches the output limit
  (`max_len`, or `output_limit` of the source when `max_length_ratio` is given); at
  the limit the live hypotheses are scored as they are, so beam_size=1 with alpha=0
  is exactly greedy decoding.

  model, params: a Seq2Seq and its params, or tuples of them (an ensemble, see
  `jaxseq/decoding/ensemble.py`). src: [src_len] int (0 = PAD). prefix: [prefix_len] int, target
  tokens every hypothesis starts with (padded with PAD; their log-probabilities count in
  the score), or None; the output limit is raised to leave room for one more token.
  constraints: phrases every output must contain (`jaxseq/decoding/constraints.py`: one
  sentence's Constraints, fields [max_constraint_tokens]), or None; n-best slots with no
  output that meets them have score NEG_INF. A sentence with no constraint tokens gets
  exactly the output of a search without constraints.
  Returns a BeamResult (see its fields for shapes).
  """
  if src.ndim != 1:
    raise ValueError(f"beam_search takes one sentence: src [src_len], got {src.shape}")
  beam_size, max_len, nbest, alpha = beam.beam_size, beam.max_len, beam.nbest, beam.alpha
  if not 1 <= nbest <= beam_size:
    raise ValueError(f"nbest={nbest} must be in [1, beam_size={beam_size}]")
  models, params = ensemble.members(model, params)
  memories, state = ensemble.start(models, params, src)
  src_len = src.shape[0]
  limit = (
    jnp.int32(max_len)
    if beam.max_length_ratio is None
    else output_limit(src, max_len, beam.max_length_ratio, beam.max_length_offset)
  )
  if prefix is not None:
    limit = jnp.clip(jnp.maximum(limit, jnp.sum(prefix != PAD) + 1), 1, max_len)
  dtype = memories[0].values.dtype
  k = 2 * beam_size  # enough candidates that beam_size of them do not end in EOS

  def step_all(states, tokens):
    """One decoder step for every live hypothesis: [beam] tokens -> log P [beam, vocab]."""
    fn = lambda s, tok: ensemble.step(models, params, memories, s, tok)
    return jax.vmap(fn)(states, tokens)

  def cond(loop: _Loop):
    # The best a live hypothesis can still reach: its log P can only fall, and its
    # penalty grows at most to lp(limit).
    best_alive = loop.alive_log_probs[0] / length_penalty(limit, alpha)
    can_improve = best_alive > jnp.min(loop.fin_scores)
    return (loop.t < limit) & can_improve

  def body(loop: _Loop, stepped: tuple | None = None) -> _Loop:
    t = loop.t
    prev = jnp.where(t == 0, BOS, loop.alive_tokens[:, jnp.maximum(t - 1, 0)])
    # stepped: this step's step_all outputs, when the constrained loop has them already.
    stepped = step_all(loop.alive_state, prev) if stepped is None else stepped
    states, step_log_probs, weights = stepped
    vocab = step_log_probs.shape[-1]
    log_probs = _extensions(loop.alive_log_probs, step_log_probs, prefix, t)  # [beam, vocab]
    cand_log_probs, flat = lax.top_k(log_probs.reshape(-1), k)  # [k]
    origin, token = flat // vocab, (flat % vocab).astype(jnp.int32)  # [k] each
    cand_tokens = loop.alive_tokens[origin].at[:, t].set(token)  # [k, max_len]
    cand_attn = loop.alive_attn[origin].at[:, t].set(weights[origin])  # [k, max_len, src_len]
    length = t + 1
    ends = (token == EOS) | (length >= limit)
    # A candidate finishes only from within the top beam_size of this step (as in a
    # beam that shrinks when a hypothesis ends), and only from a real, not padding, row.
    in_beam = jnp.arange(k) < beam_size
    real = cand_log_probs > NEG_INF / 2

    # Finished: the old ones and the candidates that end here; keep the best beam.
    cand_scores = jnp.where(
      ends & in_beam & real, cand_log_probs / length_penalty(length, alpha), NEG_INF
    )
    all_scores = jnp.concatenate([loop.fin_scores, cand_scores])
    fin_scores, pick = lax.top_k(all_scores, beam_size)
    take = lambda old, new: jnp.concatenate([old, new])[pick]
    fin_tokens = take(loop.fin_tokens, cand_tokens)
    fin_log_probs = take(loop.fin_log_probs, cand_log_probs)
    fin_lengths = take(loop.fin_lengths, jnp.full((k,), length, jnp.int32))
    fin_attn = take(loop.fin_attn, cand_attn)

    # Alive: the best beam candidates that go on.
    going = jnp.where(ends, NEG_INF, cand_log_probs)
    alive_log_probs, keep = lax.top_k(going, beam_size)
    source_row = origin[keep]
    return _Loop(
      t=t + 1,
      alive_tokens=cand_tokens[keep],
      alive_log_probs=alive_log_probs,
      alive_attn=cand_attn[keep],
      alive_state=jax.tree.map(lambda x: x[source_row], states),
      fin_tokens=fin_tokens,
      fin_scores=fin_scores,
      fin_log_probs=fin_log_probs,
      fin_lengths=fin_lengths,
      fin_attn=fin_attn,
    )

  beams = lambda x: jnp.broadcast_to(x, (beam_size,) + x.shape)
  # Only row 0 is live at the start; the others would repeat it.
  start_log_probs = jnp.full((beam_size,), NEG_INF, dtype).at[0].set(0.0)
  loop = _Loop(
    t=jnp.int32(0),
    alive_tokens=jnp.full((beam_size, max_len), PAD, jnp.int32),
    alive_log_probs=start_log_probs,
    alive_attn=jnp.zeros((beam_size, max_len, src_len), dtype),
    alive_state=jax.tree.map(beams, state),
    fin_tokens=jnp.full((beam_size, max_len), PAD, jnp.int32),
    fin_scores=jnp.full((beam_size,), NEG_INF, dtype),
    fin_log_probs=jnp.full((beam_size,), NEG_INF, dtype),
    fin_lengths=jnp.zeros((beam_size,), jnp.int32),
    fin_attn=jnp.zeros((beam_size, max_len, src_len), dtype),
  )
  if constraints is None:
    loop = lax.while_loop(cond, body, loop)
  else:
    rules = _Rules(prefix=prefix, limit=limit, alpha=alpha)
    loop = _constrained_loop(loop, cond, body, step_all, constraints, rules)

  tokens = loop.fin_tokens[:nbest]
  is_eos = tokens == EOS
  lengths = jnp.where(is_eos.any(-1), jnp.argmax(is_eos, -1), loop.fin_lengths[:nbest])
  return BeamResult(
    tokens=tokens,
    lengths=lengths.astype(jnp.int32),
    scores=loop.fin_scores[:nbest],
    log_probs=loop.fin_log_probs[:nbest],
    attention=loop.fin_attn[:nbest],
  )


def batch_beam_search(model, params, src, beam: Beam, prefix=None, constraints=None) -> BeamResult:
  """src [batch, src_len] (prefix [batch, prefix_len] or None; constraints: Constraints
  with [batch, max_constraint_tokens] fields, or None) -> a BeamResult with a leading
  [batch] axis on every field; the beam is shared by the batch."""
  fn = lambda s, p, c: beam_search(model, params, s, beam, prefix=p, constraints=c)
  return jax.vmap(fn)(src, prefix, constraints)


class _Rules(NamedTuple):
  """What a search step reads besides its loop: the forced prefix ([prefix_len] or None),
  the output limit ([] int) and the length penalty's alpha."""

  prefix: Array | None
  limit: Array
  alpha: float | Array


def _constrained_loop(loop: _Loop, cond, body, step_all, cons, rules: _Rules) -> _Loop:
  """The search loop with constraints (`jaxseq/decoding/constraints.py`).

  A sentence with constraint tokens takes `_constrained_step` and stops when its
  best live hypothesis cannot beat its worst finished one; a sentence without takes the
  unconstrained `body` and `cond`, so that its output is exactly theirs. Both read one
  decoder step (`step_all`) per position.
  """
  beam_size = loop.alive_log_probs.shape[0]
  constrained = constraints_lib.has_any(cons)

  def both_cond(carry) -> Array:
    loop, _ = carry
    # As `cond`, and a beam whose every hypothesis was dropped stops too.
    best = jnp.max(loop.alive_log_probs)
    best_alive = best / length_penalty(rules.limit, rules.alpha)
    going = (loop.t < rules.limit) & (best_alive > jnp.min(loop.fin_scores))
    going = going & (best > NEG_INF / 2)
    return jnp.where(constrained, going, cond(loop))

  def both_body(carry):
    loop, progress = carry
    prev = jnp.where(loop.t == 0, BOS, loop.alive_tokens[:, jnp.maximum(loop.t - 1, 0)])
    stepped = step_all(loop.alive_state, prev)
    plain = body(loop, stepped)
    new, progress = _constrained_step(loop, progress, stepped, cons, rules)
    return jax.tree.map(lambda a, b: jnp.where(constrained, a, b), new, plain), progress

  progress = jax.tree.map(
    lambda x: jnp.broadcast_to(x, (beam_size,) + x.shape), constraints_lib.start(cons)
  )
  return lax.while_loop(both_cond, both_body, (loop, progress))[0]


def _constrained_step(
  loop: _Loop,
  progress: constraints_lib.Progress,
  stepped: tuple,
  cons: constraints_lib.Constraints,
  rules: _Rules,
) -> tuple[_Loop, constraints_lib.Progress]:
  """One output position of the constrained search (progress: [beam] leading axis;
  stepped: the decoder step's (states, log_probs [beam, vocab], weights [beam, src_len])).

  EOS is open only to hypotheses that meet every phrase; the candidates and the beam
  allocation are `constraints_lib.candidates` and `constraints_lib.allocate`, over the
  candidates that can still meet every phrase within the output limit. A candidate
  finishes when the allocation over all candidates keeps it and it ends (EOS or the output
  limit), then meeting every phrase; the live beam is the allocation over the candidates
  that go on.
  """
  t = loop.t
  beam_size = loop.alive_log_probs.shape[0]
  prefix, limit, alpha = rules
  states, step_log_probs, weights = stepped
  # As in `body`; `candidates` closes EOS where needed.
  log_probs = _extensions(loop.alive_log_probs, step_log_probs, prefix, t)  # [beam, vocab]
  k = 2 * beam_size
  origin, token, cand_log_probs = constraints_lib.candidates(cons, progress, log_probs, k)
  each = lambda fn: jax.vmap(fn, in_axes=(None, 0))
  grown = jax.tree.map(lambda x: x[origin], progress)
  cand_progress = jax.vmap(constraints_lib.advance, in_axes=(None, 0, 0))(cons, grown, token)
  banks = each(constraints_lib.met_count)(cons, cand_progress)
  met = each(constraints_lib.all_met)(cons, cand_progress)
  length = t + 1
  # A candidate that cannot meet every phrase within the output limit is dropped.
  hopeless = each(constraints_lib.needed)(cons, cand_progress) > limit - length
  cand_log_probs = jnp.where(hopeless, NEG_INF, cand_log_probs)
  ends = (token == EOS) | (length >= limit)
  real = cand_log_probs > NEG_INF / 2

  def extend(rows):
    """Tokens [beam, max_len] and attention [beam, max_len, src_len] of the given candidates."""
    source = origin[rows]
    tokens = loop.alive_tokens[source].at[:, t].set(token[rows])
    return tokens, loop.alive_attn[source].at[:, t].set(weights[source])

  # Finished: the old ones and the kept candidates that end here meeting every phrase.
  chosen = constraints_lib.allocate(cand_log_probs, banks, beam_size)
  finishing = (ends & met & real)[chosen]
  new_tokens, new_attn = extend(chosen)
  new_log_probs = jnp.where(finishing, cand_log_probs[chosen], NEG_INF)
  # The penalty divides real scores only: NEG_INF / lp would pass for a real score.
  new_scores = jnp.where(finishing, new_log_probs / length_penalty(length, alpha), NEG_INF)
  all_scores = jnp.concatenate([loop.fin_scores, new_scores])
  fin_scores, pick = lax.top_k(all_scores, beam_size)
  take = lambda old, new: jnp.concatenate([old, new])[pick]
  fin_tokens = take(loop.fin_tokens, jnp.where(finishing[:, None], new_tokens, PAD))
  fin_attn = take(loop.fin_attn, jnp.where(finishing[:, None, None], new_attn, 0))
  fin_lengths = take(loop.fin_lengths, jnp.where(finishing, length, 0).astype(jnp.int32))

  # Alive: the allocation over the candidates that go on.
  going = jnp.where(ends, NEG_INF, cand_log_probs)
  keep = constraints_lib.allocate(going, banks, beam_size)
  alive_tokens, alive_attn = extend(keep)
  new_loop = _Loop(
    t=t + 1,
    alive_tokens=alive_tokens,
    alive_log_probs=going[keep],
    alive_attn=alive_attn,
    alive_state=jax.tree.map(lambda x: x[origin[keep]], states),
    fin_tokens=fin_tokens,
    fin_scores=fin_scores,
    fin_log_probs=take(loop.fin_log_probs, new_log_probs),
    fin_lengths=fin_lengths,
    fin_attn=fin_attn,
  )
  return new_loop, jax.tree.map(lambda x: x[keep], cand_progress)
