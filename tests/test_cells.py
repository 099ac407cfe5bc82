import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.model import cells
from jaxseq.model.seq2seq import run_rnns


def run_rnn(cell, kind: str, x, mask, *, reverse: bool):
  """`run_rnns` of one cell: (outputs [src_len, hidden], final carry)."""
  outputs, finals = run_rnns([cell], kind, x, mask, reverse=[reverse])
  return outputs[0], finals[0]


class _Runner(cells.RecurrentCell):
  """A cell that also runs run_rnn, so the test can apply it with flax."""

  def run(self, x, mask, reverse):
    return run_rnn(self, self.cell, x, mask, reverse=reverse)

  def loop(self, x, mask, reverse):
    carry = cells.zero_carry(self.cell, self.hidden_size)
    order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outs = [None] * x.shape[0]
    for t in order:
      if mask[t]:
        carry = self.step(carry, self.project(x[t]))
        outs[t] = cells.carry_output(self.cell, carry)
      else:
        outs[t] = jnp.zeros(self.hidden_size)
    return jnp.stack(outs), carry


@pytest.mark.parametrize("kind", cells.CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_hoisted_scan_equals_a_step_by_step_loop(kind, reverse):
  cell = _Runner(kind, 6)
  x = jax.random.normal(jax.random.key(0), (5, 3))
  mask = jnp.array([True, True, True, False, False])
  params = cell.init(jax.random.key(1), x, mask, reverse, method=_Runner.run)
  out, final = cell.apply(params, x, mask, reverse, method=_Runner.run)
  ref_out, ref_final = cell.apply(params, x, np.asarray(mask), reverse, method=_Runner.loop)
  np.testing.assert_allclose(out, ref_out, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), final, ref_final)


def test_gru_update_gate_one_keeps_the_state():
  h = jnp.array([0.3, -0.2])
  kernel = jnp.zeros((2, 6))
  x_gates = (jnp.zeros(2), jnp.full(2, 50.0), jnp.zeros(2))  # z -> 1
  np.testing.assert_allclose(cells.gru_step(kernel, jnp.zeros(6), h, x_gates), h, atol=1e-6)


def test_lstm_forget_gate_zero_and_input_gate_zero_clear_the_cell():
  c, h = jnp.ones(2), jnp.ones(2)
  x_gates = cells.split_gates(jnp.full(8, -50.0), 4)  # i, f, g, o all very negative
  c2, _ = cells.lstm_step(jnp.zeros((2, 8)), jnp.zeros(8), (c, h), x_gates)
  np.testing.assert_allclose(c2, 0.0, atol=1e-6)


class _Pair(nn.Module):
  """Two cells run by run_rnns in one scan, and each by itself, for comparison."""

  kind: str

  def setup(self):
    self.fwd = cells.RecurrentCell(self.kind, 4)
    self.bwd = cells.RecurrentCell(self.kind, 4)

  def together(self, x, mask):
    return run_rnns([self.fwd, self.bwd], self.kind, x, mask, reverse=[False, True])

  def apart(self, x, mask):
    out_f, fin_f = run_rnn(self.fwd, self.kind, x, mask, reverse=False)
    out_b, fin_b = run_rnn(self.bwd, self.kind, x, mask, reverse=True)
    return (out_f, out_b), (fin_f, fin_b)


@pytest.mark.parametrize("kind", cells.CELLS)
def test_both_directions_in_one_scan_equal_two_scans(kind):
  pair = _Pair(kind)
  x = jax.random.normal(jax.random.key(2), (6, 3))
  mask = jnp.array([True, True, True, True, False, False])
  params = pair.init(jax.random.key(3), x, mask, method=_Pair.apart)
  together = pair.apply(params, x, mask, method=_Pair.together)
  apart = pair.apply(params, x, mask, method=_Pair.apart)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), together, apart)
  np.testing.assert_array_equal(together[0][1][4:], 0.0)  # padding has no backward output
