import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq import cells
from jaxseq.model import run_rnn


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
  x_proj = jnp.concatenate([jnp.zeros(2), jnp.full(2, 50.0), jnp.zeros(2)])  # z -> 1
  np.testing.assert_allclose(cells.gru_step(kernel, jnp.zeros(6), h, x_proj), h, atol=1e-6)


def test_lstm_forget_gate_zero_and_input_gate_zero_clear_the_cell():
  c, h = jnp.ones(2), jnp.ones(2)
  x_proj = jnp.full(8, -50.0)  # i, f, g, o pre-activations all very negative
  c2, _ = cells.lstm_step(jnp.zeros((2, 8)), jnp.zeros(8), (c, h), x_proj)
  np.testing.assert_allclose(c2, 0.0, atol=1e-6)
