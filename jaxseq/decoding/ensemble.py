"""The decoder step that every search calls: one model, or several models averaged.

Greedy search, sampling and beam search never call the model directly. They call
`start` once per sentence and `step` once per output position, and read
log-probabilities, so one search serves a single model and an ensemble alike:

  start(models, params, src)                  -> (memories, states)
  step(models, params, memories, states, tok) -> (states, log_probs [tgt_vocab],
                                                  weights [src_len])

`models` is a tuple of `Seq2Seq` (static under jit; they may differ in architecture) and
`params` a tuple of their parameter trees; `members` turns one model into such a tuple.
The members must share the source and the target vocabulary: they read the same source
ids and their output distributions are combined token by token.

An ensemble's distribution is the renormalised mean of the members' log-probabilities
(a product of experts); its attention weights are the mean of the members' (what beam
search's coverage penalty sums, so an ensemble's coverage is its members' mean coverage). For one
member, `step` returns that model's log-softmax unchanged.

References:
  Sutskever et al. 2014, Sec. 3.6 (an ensemble of LSTMs for translation); Hinton 2002
    (product of experts); Junczys-Dowmunt et al. 2016 (log-linear ensembles in Marian).
"""

from typing import Any

import jax
import jax.numpy as jnp

from jaxseq.model.seq2seq import Seq2Seq

Array = jax.Array


def members(model, params) -> tuple[tuple[Seq2Seq, ...], tuple[Any, ...]]:
  """(models, params) as tuples: a single Seq2Seq and its params become an ensemble of one."""
  if isinstance(model, Seq2Seq):
    return (model,), (params,)
  models, params = tuple(model), tuple(params)
  if not models or len(models) != len(params):
    raise ValueError(
      f"an ensemble needs one params tree per model: {len(models)} models, "
      f"{len(params)} params trees"
    )
  sizes = {m.tgt_vocab_size for m in models}
  if len(sizes) != 1:
    raise ValueError(f"ensemble members must share the target vocabulary; sizes {sorted(sizes)}")
  return models, params


def start(models, params, src: Array) -> tuple[tuple, tuple]:
  """src [src_len] -> (one Memory per member, one first DecoderState per member)."""
  encoded = [m.apply(p, src, method=Seq2Seq.encode) for m, p in zip(models, params)]
  return tuple(e[0] for e in encoded), tuple(e[1] for e in encoded)


def step(
  models, params, memories: tuple, states: tuple, token: Array
) -> tuple[tuple, Array, Array]:
  """token [] int -> (new states, log_probs [tgt_vocab] float32, weights [src_len])."""
  outs = [
    m.apply(p, mem, s, token, method=Seq2Seq.decode_step)
    for m, p, mem, s in zip(models, params, memories, states)
  ]
  new_states = tuple(o[0] for o in outs)
  log_probs = [jax.nn.log_softmax(o[1]) for o in outs]
  if len(outs) == 1:
    return new_states, log_probs[0], outs[0][2]
  mean = jnp.mean(jnp.stack(log_probs), axis=0)  # --> [tgt_vocab]
  weights = jnp.mean(jnp.stack([o[2] for o in outs]), axis=0)  # --> [src_len]
  return new_states, jax.nn.log_softmax(mean), weights


def teacher_forced_log_probs(models, params, src: Array, tgt_in: Array) -> Array:
  """The ensemble's log P of every target token given the reference before it.

  src: [src_len]; tgt_in: [tgt_len] (BOS y_1 ... y_n, padded) -> [tgt_len, tgt_vocab]:
  row t is the distribution of y_{t+1}. A `lax.scan` over `step` (held-out NLL of an
  ensemble, and the score check of forced prefixes).
  """
  memories, states = start(models, params, src)

  def body(states, token):
    states, log_probs, _ = step(models, params, memories, states, token)
    return states, log_probs

  return jax.lax.scan(body, states, tgt_in)[1]
