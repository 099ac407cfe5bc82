"""The training loops as they were before their rewrite, kept as a reference for tests.

`plain_loops()` puts the plain-scan encoder back (`seq2seq.run_rnns`, gradients by
`jax.grad` through `lax.scan`), and `plain_teacher_forced` runs the decoder scan with the
whole input projection inside the loop. tests/test_loop_exactness.py compares the
library's loss and gradients with these.
"""

import contextlib
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxseq.decoding import decode
from jaxseq.model import cells, seq2seq
from jaxseq.model.seq2seq import Seq2Seq


def plain_run_rnns(
  layer_cells: Sequence[cells.RecurrentCell],
  kind: str,
  x,
  mask,
  *,
  reverse: Sequence[bool],
  unroll: int = 1,
) -> tuple[tuple, tuple]:
  """`seq2seq.run_rnns` as a plain `lax.scan` over the cell steps."""
  step = cells.CELLS[kind].step
  flip = lambda a, rev: a[::-1] if rev else a
  inputs = tuple(
    (tuple(flip(g, rev) for g in c.project(x)), flip(mask, rev))
    for c, rev in zip(layer_cells, reverse)
  )
  weights = tuple(c.weights() for c in layer_cells)

  def body(carries, inputs):
    new_carries, outputs = [], []
    for (kernel, bias), carry, (xp, real) in zip(weights, carries, inputs):
      new = step(kernel, bias, carry, xp)
      carry = jax.tree.map(functools.partial(jnp.where, real), new, carry)
      new_carries.append(carry)
      outputs.append(jnp.where(real, cells.carry_output(kind, carry), 0.0))
    return tuple(new_carries), tuple(outputs)

  init = tuple(cells.zero_carry(kind, c.hidden_size, x.dtype) for c in layer_cells)
  finals, outputs = lax.scan(body, init, inputs, unroll=unroll)
  return tuple(flip(o, rev) for o, rev in zip(outputs, reverse)), finals


@contextlib.contextmanager
def plain_loops():
  """Within it, the encoder runs `plain_run_rnns` (trace under it: jit caches by function)."""
  saved = seq2seq.run_rnns
  seq2seq.run_rnns = plain_run_rnns
  try:
    yield
  finally:
    seq2seq.run_rnns = saved


def plain_teacher_forced(model: Seq2Seq, params, src, tgt_in, key, train: bool = False):
  """`decode.teacher_forced` at ratio 1 with every projection of the input in the loop."""
  enc_key, step_key, emb_key, out_key = jax.random.split(key, 4)
  memory, state = model.apply(
    params, src, train=train, method=Seq2Seq.encode, rngs={"dropout": enc_key}
  )
  step_keys = jax.random.split(step_key, tgt_in.shape[0])
  embedded = model.apply(
    params, tgt_in, train=train, method=Seq2Seq.embed_target, rngs={"dropout": emb_key}
  )
  hoist = model.readout_outside_recurrence

  def body(state, inputs):
    emb, k = inputs
    state, out, weights = model.apply(
      params,
      memory,
      state,
      emb,
      train=train,
      readout=not hoist,
      method=Seq2Seq.decode_hidden,
      rngs={"dropout": k},
    )
    return state, (out, weights)

  _, (outs, weights) = lax.scan(body, state, (embedded, step_keys))
  logits = model.apply(
    params, outs, train=train, readout=hoist, method=Seq2Seq.logits, rngs={"dropout": out_key}
  )
  return logits, weights


def plain_sometimes_forced(model: Seq2Seq, params, src, tgt_in, key, forcing: decode.Forcing):
  """`decode.teacher_forced` below ratio 1 (its loop is unchanged) on the plain encoder."""
  with plain_loops():
    return decode.teacher_forced(model, params, src, tgt_in, key, forcing)
