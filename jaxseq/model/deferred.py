"""A loop over one sentence whose weight gradients are made once, after the backward loop.

`scan(step, params, consts, carry, xs)` is `lax.scan(lambda c, x: step(params, consts, c, x),
carry, xs)` for a flax step (the teacher-forced decoder). Every weight the step applies
with a matmul y = x W (+ b) (a `nn.Dense`, part of one's rows, a cell's recurrent kernel)
gets its gradient from

    dL/dW = sum_t x_t^T dL/dy_t,     dL/db = sum_t dL/dy_t.

`jax.grad` of the plain loop forms x_t^T dL/dy_t and adds it to a carried sum at every
step. Here the VJP differentiates the loop with those weights held constant and a zero
"tap" added to each such y, a loop input per step: the backward loop then emits
dL/dy_t (the tap's gradient) instead, the forward loop emits x_t, and after the loop
each weight gradient is one [in, steps] @ [steps, out] matmul (`recurrence.weight_grads`,
whose batched form also contracts the batch). Weights used in the step in any other way
keep the gradient `jax.vjp` gives them.

The matmuls to tap report themselves through `linear` (called by `cells.trailing_rows`
and `cells.RecurrentCell.step`) and every `nn.Dense` call in the step is routed there,
keyed by module path and call order, so the step itself is the model's own code.
"""

import collections
import contextlib
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import custom_batching, lax

Array = jax.Array


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


@dataclasses.dataclass
class _Step:
  """What one trace of the step records; `taps` None: record shapes only."""

  taps: dict | None
  inputs: dict = dataclasses.field(default_factory=dict)  # key -> x
  where: dict = dataclasses.field(default_factory=dict)  # key -> (path, kernel, bias, row)
  outputs: dict = dataclasses.field(default_factory=dict)  # key -> ShapeDtypeStruct of y
  calls: collections.Counter = dataclasses.field(default_factory=collections.Counter)


_ACTIVE: list[_Step] = []


def linear(
  path: tuple, x: Array, kernel: Array, bias: Array | None, names: tuple, row: int = 0
) -> Array:
  """x @ kernel (+ bias), for a kernel (in the compute dtype) that is rows row: of the
  parameter names[0] of the module at `path` (names[1]: its bias, when given). Inside a
  deferred step, the product is tapped (see the module docstring)."""
  if not _ACTIVE:
    y = x @ kernel
    return y if bias is None else y + bias
  step = _ACTIVE[-1]
  index = step.calls[(path, names[0])]
  step.calls[(path, names[0])] += 1
  key = f"{'/'.join(path)}/{names[0]}/{row}/{index}"
  kernel = lax.stop_gradient(kernel)
  y = x @ kernel
  if bias is not None:
    y = y + lax.stop_gradient(bias)
  step.where[key] = (path, names[0], names[1] if bias is not None else None, row)
  step.outputs[key] = jax.ShapeDtypeStruct(y.shape, y.dtype)
  step.inputs[key] = x
  return y if step.taps is None else y + step.taps[key]


def _dense(next_fun, args, kwargs, context):
  module = context.module
  if not _ACTIVE or type(module) is not nn.Dense or context.method_name != "__call__":
    return next_fun(*args, **kwargs)
  (x,) = args
  params = module.variables["params"]
  dtype = module.dtype or jnp.result_type(x.dtype, params["kernel"].dtype)
  bias = params["bias"].astype(dtype) if module.use_bias else None
  names = ("kernel", "bias")
  return linear(module.path, x.astype(dtype), params["kernel"].astype(dtype), bias, names)


@contextlib.contextmanager
def _tracing(step: _Step):
  _ACTIVE.append(step)
  try:
    with nn.intercept_methods(_dense):
      yield
  finally:
    _ACTIVE.pop()


def _traced_step(step_fn, params, consts, carry, x, taps):
  record = _Step(taps)
  with _tracing(record):
    carry, y = step_fn(params, consts, carry, x)
  return carry, y, record


def _loop(step_fn, unroll, params, consts, carry, xs, taps):
  """The loop with taps: ((final carry, ys), recorded inputs per key, stacked)."""

  def body(carry, inputs):
    x, t = inputs
    carry, y, record = _traced_step(step_fn, params, consts, carry, x, t)
    return carry, (y, record.inputs)

  carry, (ys, inputs) = lax.scan(body, carry, (xs, taps), unroll=unroll)
  return (carry, ys), inputs


def _shapes(step_fn, params, consts, carry, xs) -> _Step:
  """One step traced for its shapes: where every tapped matmul is and what it makes."""
  first = jax.tree.map(lambda a: a[0], xs)
  found: list[_Step] = []

  def trace(params, consts, carry, x):
    carry, y, record = _traced_step(step_fn, params, consts, carry, x, None)
    found.append(record)
    return carry, y

  jax.eval_shape(trace, params, consts, carry, first)
  return found[0]


def scan(step_fn, params, consts, carry, xs, unroll: int = 1):
  """lax.scan of step_fn(params, consts, carry, x) -> (carry, y) over xs; see the module
  docstring for its gradient. Returns (final carry, ys)."""
  return _scan(step_fn, unroll, params, consts, carry, xs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _scan(step_fn, unroll, params, consts, carry, xs):
  return lax.scan(lambda c, x: step_fn(params, consts, c, x), carry, xs, unroll=unroll)


def _scan_fwd(step_fn, unroll, params, consts, carry, xs):
  length = jax.tree.leaves(xs)[0].shape[0]
  shapes = _shapes(step_fn, params, consts, carry, xs).outputs
  taps = {k: jnp.zeros((length, *s.shape), s.dtype) for k, s in shapes.items()}
  loop = functools.partial(_loop, step_fn, unroll)
  (out, inputs), vjp = jax.vjp(loop, params, consts, carry, xs, taps)
  return out, (vjp, inputs, params, consts, carry, xs)


def _scan_bwd(step_fn, unroll, residuals, cotangent):
  vjp, inputs, params, consts, carry, xs = residuals
  where = _shapes(step_fn, params, consts, carry, xs).where
  zeros = jax.tree.map(jnp.zeros_like, inputs)
  d_params, d_consts, d_carry, d_xs, d_taps = vjp((cotangent, zeros))
  d_params = jax.tree.map(lambda d: d, d_params)  # fresh dicts, to be filled in
  for key, (path, kernel_name, bias_name, row) in where.items():
    d_kernel, d_bias = weight_grads(inputs[key], d_taps[key])
    scope = d_params["params"]
    for name in path:
      scope = scope[name]
    kernel = scope[kernel_name]
    rows = slice(row, row + d_kernel.shape[0])
    scope[kernel_name] = kernel.at[rows].add(d_kernel.astype(kernel.dtype))
    if bias_name is not None:
      scope[bias_name] = scope[bias_name] + d_bias.astype(scope[bias_name].dtype)
  return tuple(
    _only_floats(p, d)
    for p, d in zip((params, consts, carry, xs), (d_params, d_consts, d_carry, d_xs))
  )


def _only_floats(primal: Any, cotangent: Any) -> Any:
  """The cotangent, with None for the leaves that are not floating point (masks, keys)."""
  return jax.tree.map(
    lambda p, d: d if jnp.issubdtype(p.dtype, jnp.inexact) else None,
    primal,
    cotangent,
  )


_scan.defvjp(_scan_fwd, _scan_bwd)
