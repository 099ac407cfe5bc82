"""GRU and LSTM recurrences over one sentence, with a VJP of their own.

`run(kind, weights, x_gates, masks, inits)` scans one or more cells ("lanes": the two
directions of a bidirectional layer) side by side in one `lax.scan`, exactly as the
plain loop of `seq2seq.run_rnns` did, and returns every step's state. Its reverse-mode
rule differs from what `jax.grad` derives for that loop in where the weight gradients
are made.

Per step a cell computes gate pre-activations z_t = x_t + p_t, where x_t = W_i x + b_i is
projected before the loop and p_t = W^T h_{t-1} + b is the recurrent part, then its new
state from z_t. By the chain rule

    dL/dW = sum_t h_{t-1} (dL/dp_t)^T,     dL/db = sum_t dL/dp_t.

The derived loop multiplies h_{t-1} by dL/dp_t and adds the product into a carried
[hidden, gates] sum at every step. Here the backward loop only carries dL/dh (and dL/dc
for an LSTM) and emits one gradient per step as a scan output; after the loop dL/dp for
all steps is one [len, gates] array and dL/dW one [hidden, len] @ [len, gates] matmul.
Under `jax.vmap` that matmul contracts the batch axis as well (`weight_grads`, a
`custom_vmap`), so no per-example weight gradient is ever stored.

Every gate gradient is dh (or dc~) times a factor that the forward step already knows,
so the forward loop saves those factors (zero on a padded step) and the backward loop
holds, per lane, one elementwise product, one matmul dL/dh_{t-1} = W dL/dp_t (+ the
direct path) and one update:

  GRU (reset after the recurrent matmul): r = s(z_r), u = s(z_u), n = tanh(x_n + r a),
    a = (W^T h_{t-1} + b)_n, h_t = (1-u) n + u h_{t-1}:
      dz = [dh; dh; dh] * ((1-u)(1-n^2) a r(1-r), (h_{t-1} - n) u(1-u), (1-u)(1-n^2)),
      dp = dz * (1, 1, r),  dh_{t-1} = u dh + W dp.
    The loop emits dh; dz and dp for all steps are made from it after the loop.
  LSTM: c_t = s(f) c_{t-1} + s(i) tanh(g), h_t = s(o) tanh(c_t):
      dc~ = dc + dh s(o)(1 - tanh^2 c_t),
      dz = [dc~; dc~; dc~; dh] * (tanh(g) s'(i), c_{t-1} s'(f), s(i)(1 - tanh^2 g),
                                  tanh(c_t) s'(o)),
      dp = dz,  dc_{t-1} = s(f) dc~,  dh_{t-1} = W dp.
    The loop emits dz.

A padded step (mask False) keeps the state: its gradients pass through unchanged and its
gate gradients are zero (its saved factors say so).
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import custom_batching, lax

from jaxseq.model import cells

Array = jax.Array
Carry = Any  # GRU: h [hidden]; LSTM: (c, h)


@custom_batching.custom_vmap
def weight_grads(inputs: Array, grads: Array) -> tuple[Array, Array]:
  """(inputs^T @ grads, sum of grads over rows): the gradients of a weight and bias used
  as `inputs @ W + b` on every row. inputs: [len, in]; grads: [len, out]."""
  return _weight_grads(inputs, grads)


def _weight_grads(inputs: Array, grads: Array) -> tuple[Array, Array]:
  rows = inputs.reshape(-1, inputs.shape[-1])
  flat = grads.reshape(-1, grads.shape[-1])
  kernel = lax.dot_general(rows, flat, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  return kernel.astype(grads.dtype), flat.astype(jnp.float32).sum(0).astype(grads.dtype)


@weight_grads.def_vmap
def _weight_grads_vmap(axis_size, in_batched, inputs, grads):
  # The batch is more rows of the same sum: the result has no batch axis.
  inputs, grads = (
    x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
    for x, batched in zip((inputs, grads), in_batched)
  )
  return _weight_grads(inputs, grads), (False, False)


def _gru_forward(kernel, bias, h, x_gates, real):
  hr, hz, hn = jnp.split(h @ kernel + bias, 3, axis=-1)
  x_r, x_z, x_n = x_gates
  r = jax.nn.sigmoid(x_r + hr)
  u = jax.nn.sigmoid(x_z + hz)
  n = jnp.tanh(x_n + r * hn)
  new = jnp.where(real, (1.0 - u) * n + u * h, h)
  # dz = [dh; dh; dh] * to_x and du = [dh; dh; dh] * to_u (zero on a padded step);
  # dh_{t-1} = keep * dh + W du.
  dn = (1.0 - u) * (1.0 - n * n)
  to_x = jnp.concatenate([dn * hn * r * (1.0 - r), (h - n) * u * (1.0 - u), dn], axis=-1)
  to_x = jnp.where(real, to_x, 0.0)
  to_u = jnp.where(real, to_x * jnp.concatenate([jnp.ones_like(r), jnp.ones_like(r), r], -1), 0.0)
  return new, (to_x, to_u, jnp.where(real, u, 1.0))


def _lstm_forward(kernel, bias, carry, x_gates, real):
  c, h = carry
  gates = jnp.split(h @ kernel + bias, 4, axis=-1)
  i, f, g, o = (x + hg for x, hg in zip(x_gates, gates))
  si, sf, tg, so = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
  c_new = sf * c + si * tg
  tc = jnp.tanh(c_new)
  new = (jnp.where(real, c_new, c), jnp.where(real, so * tc, h))
  # dc~ = dc + dh * through_c; dz = [dc~; dc~; dc~; dh] * to_z (zero on a padded step);
  # dc_{t-1} = keep_c * dc + keep_h * dh; dh_{t-1} = W dz (+ dh on a padded step).
  through_c = so * (1.0 - tc * tc)
  to_z = jnp.concatenate(
    [tg * si * (1.0 - si), c * sf * (1.0 - sf), si * (1.0 - tg * tg), tc * so * (1.0 - so)], -1
  )
  saved = (
    jnp.where(real, to_z, 0.0),
    through_c,
    jnp.where(real, sf, 1.0),
    jnp.where(real, through_c * sf, 0.0),
  )
  return new, saved


def _gru_backward(kernel, dh, saved, real):
  """Emits dh itself: dz and du are made from it after the loop."""
  _, to_u, keep = saved
  du = jnp.concatenate([dh, dh, dh], axis=-1) * to_u
  return dh * keep + du @ kernel.T, dh


def _lstm_backward(kernel, dcarry, saved, real):
  dc, dh = dcarry
  to_z, through_c, keep_c, keep_h = saved
  dct = dc + dh * through_c
  dz = jnp.concatenate([dct, dct, dct, dh], axis=-1) * to_z
  dh_prev = dz @ kernel.T + jnp.where(real, 0.0, dh)
  return (dc * keep_c + dh * keep_h, dh_prev), dz


_FORWARD = {"gru": _gru_forward, "lstm": _lstm_forward}
_BACKWARD = {"gru": _gru_backward, "lstm": _lstm_backward}
_GATES = {"gru": 3, "lstm": 4}


def _scan(kind, unroll, weights, x_gates, masks, inits, keep):
  """The forward loop: (states per lane, finals per lane, saved activations per lane or ())."""
  step = _FORWARD[kind]

  def body(carries, xs):
    new, outs = [], []
    for (kernel, bias), carry, (x, real) in zip(weights, carries, xs):
      carry, saved = step(kernel, bias, carry, x, real)
      new.append(carry)
      outs.append((carry, saved if keep else ()))
    return tuple(new), tuple(outs)

  finals, outs = lax.scan(body, tuple(inits), tuple(zip(x_gates, masks)), unroll=unroll)
  return tuple(o[0] for o in outs), finals, tuple(o[1] for o in outs)


def run(kind: str, unroll: int, weights, x_gates, masks, inits):
  """Scans cells of one kind side by side over a sentence.

  kind: "gru" or "lstm"; weights: per lane (kernel [hidden, gates], bias [gates]);
  x_gates: per lane, one [len, hidden] array per gate (W_i x + b_i); masks: per lane,
  [len] bool (False: the step keeps the state); inits: per lane, the initial carry.
  Returns (states, finals): per lane the carry after every step ([len, hidden] arrays,
  c and h for an LSTM) and after the last one. A cell of `cells.CELLS` other than these
  two runs its own step in a plain scan, differentiated by `jax.grad`.
  """
  if kind not in _BACKWARD:
    return _plain(cells.CELLS[kind].step, unroll, weights, x_gates, masks, inits)
  return _run(kind, unroll, weights, x_gates, masks, inits)


def _plain(step, unroll, weights, x_gates, masks, inits):
  def body(carries, xs):
    new = []
    for (kernel, bias), carry, (x, real) in zip(weights, carries, xs):
      stepped = step(kernel, bias, carry, x)
      new.append(jax.tree.map(functools.partial(jnp.where, real), stepped, carry))
    return tuple(new), tuple(new)

  finals, states = lax.scan(body, tuple(inits), tuple(zip(x_gates, masks)), unroll=unroll)
  return states, finals


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _run(kind: str, unroll: int, weights, x_gates, masks, inits):
  states, finals, _ = _scan(kind, unroll, weights, x_gates, masks, inits, keep=False)
  return states, finals


def _run_fwd(kind, unroll, weights, x_gates, masks, inits):
  states, finals, saved = _scan(kind, unroll, weights, x_gates, masks, inits, keep=True)
  return (states, finals), (weights, masks, inits, states, saved)


def _previous(init: Array, states: Array) -> Array:
  """The state before every step: init, then every state but the last."""
  return jnp.concatenate([init[None], states[:-1]], axis=0)


def _run_bwd(kind, unroll, residuals, cotangents):
  weights, masks, inits, states, saved = residuals
  d_states, d_finals = cotangents
  step = _BACKWARD[kind]

  def body(dcarries, xs):
    new, dxs = [], []
    for (kernel, _), dcarry, (d_state, sv, real) in zip(weights, dcarries, xs):
      dcarry = jax.tree.map(jnp.add, dcarry, d_state)
      dcarry, dx = step(kernel, dcarry, sv, real)
      new.append(dcarry)
      dxs.append(dx)
    return tuple(new), tuple(dxs)

  xs = tuple(zip(d_states, saved, masks))
  d_inits, dxs = lax.scan(body, tuple(d_finals), xs, reverse=True, unroll=unroll)
  d_weights, d_x_gates = [], []
  for init, s, sv, dx in zip(inits, states, saved, dxs):
    if kind == "gru":  # the loop emitted dh
      h_prev, dh3 = _previous(init, s), jnp.concatenate([dx, dx, dx], axis=-1)
      dx, du = dh3 * sv[0], dh3 * sv[1]
    else:
      du, h_prev = dx, _previous(init[1], s[1])
    d_weights.append(weight_grads(h_prev, du))
    d_x_gates.append(tuple(jnp.split(dx, _GATES[kind], axis=-1)))
  return tuple(d_weights), tuple(d_x_gates), tuple(None for _ in masks), d_inits


_run.defvjp(_run_fwd, _run_bwd)
