"""GRU and LSTM cells, split so that the input projection runs outside the scan.

A recurrent cell computes `W_i x_t + W_h h_{t-1} + b`. The `W_i x_t` half does not
depend on the recurrence, so for a whole sentence it is one `[len, in] @ [in, gates]`
matmul done before `lax.scan`; only `W_h h_{t-1}` stays inside the loop. The gate
matrices of each cell are fused into one kernel (`gates = 3 * hidden` for a GRU,
`4 * hidden` for an LSTM).

References:
  Cho et al. 2014, "Learning Phrase Representations using RNN Encoder-Decoder", Eq. 5-8
  (GRU; the reset gate is applied after the recurrent matmul, as cuDNN and PyTorch do).
  Hochreiter & Schmidhuber 1997; Gers et al. 2000 (LSTM with forget gate).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Carry = Any  # GRU: h [hidden]; LSTM: (c [hidden], h [hidden])


def split_gates(x_proj: Array, num_gates: int) -> tuple[Array, ...]:
  """[..., num_gates * hidden] -> one [..., hidden] array per gate.

  The steps take their input projection split like this. A scan then slices each gate's
  own array per position; when one fused loop instead reads several slices of the same
  scanned [len, gates] array, XLA's CPU backend emits scalar code for it, and a GRU step
  of 32 sentences takes 2.8x as long (benchmarks/speed/gru_gates.py, results/speed/gates.json).
  """
  return tuple(jnp.split(x_proj, num_gates, axis=-1))


def gru_step(kernel: Array, bias: Array, h: Array, x_gates: tuple[Array, ...]) -> Array:
  """One GRU step. kernel: [hidden, 3*hidden]; x_gates: (x_r, x_z, x_n), W_i x + b_i
  split by gate, each [hidden]."""
  h_proj = h @ kernel + bias
  x_r, x_z, x_n = x_gates
  h_r, h_z, h_n = jnp.split(h_proj, 3, axis=-1)
  reset = jax.nn.sigmoid(x_r + h_r)
  update = jax.nn.sigmoid(x_z + h_z)
  candidate = jnp.tanh(x_n + reset * h_n)
  return (1.0 - update) * candidate + update * h


def lstm_step(kernel: Array, bias: Array, carry: Carry, x_gates: tuple[Array, ...]) -> Carry:
  """One LSTM step. kernel: [hidden, 4*hidden]; x_gates: W_i x + b_i split by gate
  (i, f, g, o), each [hidden]; carry (c, h)."""
  c, h = carry
  h_gates = jnp.split(h @ kernel + bias, 4, axis=-1)
  i, f, g, o = (x + hg for x, hg in zip(x_gates, h_gates))
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (c, h)


def leading_rows(dense: nn.Dense, x: Array) -> Array:
  """The part of `dense([x; rest])` that reads x, the bias included: x @ K[:n] + b for
  x [..., n]. With `trailing_rows(dense, rest)` it sums to the whole, so a part whose
  input is known in advance can be projected for all positions before a loop."""
  params = dense.variables["params"]
  kernel = params["kernel"][: x.shape[-1]].astype(dense.dtype)
  y = x.astype(dense.dtype) @ kernel
  return y + params["bias"].astype(dense.dtype) if dense.use_bias else y


def trailing_rows(dense: nn.Dense, rest: Array) -> Array:
  """The part of `dense([x; rest])` that reads rest, without the bias: rest @ K[-n:]."""
  kernel = dense.variables["params"]["kernel"][-rest.shape[-1] :].astype(dense.dtype)
  return rest.astype(dense.dtype) @ kernel


class CellType(NamedTuple):
  """One kind of recurrent cell: what `CELLS` maps a config.model.cell name to."""

  num_gates: int  # gate blocks in the fused kernel: [hidden, num_gates * hidden]
  step: Callable[..., Carry]  # (kernel, bias, carry, x_gates) -> carry
  carry: Callable[[Array], Carry]  # the zero state from h = zeros [hidden]
  output: Callable[[Carry], Array]  # the hidden vector h the cell exposes


CELLS: dict[str, CellType] = {
  "gru": CellType(3, gru_step, carry=lambda h: h, output=lambda carry: carry),
  "lstm": CellType(4, lstm_step, carry=lambda h: (h, h), output=lambda carry: carry[1]),
}


def zero_carry(cell: str, hidden_size: int, dtype=jnp.float32) -> Carry:
  """The all-zero state of one cell."""
  return CELLS[cell].carry(jnp.zeros((hidden_size,), dtype))


def carry_output(cell: str, carry: Carry) -> Array:
  """The hidden vector h a cell exposes: [hidden]."""
  return CELLS[cell].output(carry)


class RecurrentCell(nn.Module):
  """The weights of one GRU or LSTM cell.

  `project(x)` maps inputs of any leading shape to gate pre-activations, split by gate;
  `step(carry, x_gates)` advances the state by one position.
  """

  cell: str
  hidden_size: int
  dtype: Any = jnp.float32  # compute dtype; the parameters stay float32

  def setup(self):
    gates = CELLS[self.cell].num_gates * self.hidden_size
    self.input = nn.Dense(gates, dtype=self.dtype, name="input")
    self.kernel = self.param(
      "recurrent_kernel", nn.initializers.orthogonal(), (self.hidden_size, gates)
    )
    self.bias = self.param("recurrent_bias", nn.initializers.zeros, (gates,))

  def project(self, x: Array) -> tuple[Array, ...]:
    """x: [..., in] -> one [..., hidden] array per gate (`split_gates`)."""
    return self.project_gates(self.input(x))

  def project_gates(self, y: Array) -> tuple[Array, ...]:
    """An input projection [..., gates] -> one [..., hidden] array per gate."""
    return split_gates(y, CELLS[self.cell].num_gates)

  def weights(self) -> tuple[Array, Array]:
    """The recurrent (kernel, bias) in the compute dtype, to be closed over by a scan body."""
    return self.kernel.astype(self.dtype), self.bias.astype(self.dtype)

  def step(self, carry: Carry, x_gates: tuple[Array, ...]) -> Carry:
    return CELLS[self.cell].step(*self.weights(), carry, x_gates)
