import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.model import attention
from tests import attention_checks as checks
from tests.conftest import REPO, init_params, tiny_model

# That every attention of the table is a distribution over the real positions, with
# exactly zero weight on padding and gradients that padding does not change, is checked
# for each row in tests/test_model.py (the checks are in tests/attention_checks.py).


def test_masked_softmax_is_a_distribution_over_real_positions():
  scores = jnp.array([3.0, -1.0, 100.0, 0.5])
  mask = jnp.array([True, True, False, True])
  w = attention.masked_softmax(scores, mask)
  assert w[2] == 0.0  # a huge score on padding still gets nothing
  np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
  assert (w[mask] > 0).all()


def test_masked_softmax_of_nothing_is_zero():
  w = attention.masked_softmax(jnp.zeros(3), jnp.zeros(3, bool))
  np.testing.assert_array_equal(w, 0.0)


def test_no_attention_has_no_weights_and_a_fixed_context():
  model = tiny_model(attention="none")
  params = init_params(model)
  memory, state = model.apply(params, jnp.array([4, 7, 0], jnp.int32), method=model.encode)
  _, _, weights = model.apply(params, memory, state, jnp.int32(1), method=model.decode_step)
  np.testing.assert_array_equal(weights, 0.0)
  np.testing.assert_array_equal(memory.context, state.cells[-1])  # C = final encoder state


def test_tutorial_attention_refuses_sources_longer_than_max_length():
  model = tiny_model(attention="tutorial", max_length=4)
  params = init_params(model)
  with pytest.raises(ValueError, match="max_length=4"):
    model.apply(params, jnp.arange(1, 7, dtype=jnp.int32), jnp.int32(1))


def test_unknown_attention_is_named():
  with pytest.raises(ValueError, match="unknown attention 'cosine'; allowed: none, tutorial"):
    attention.entry("cosine")


@pytest.mark.parametrize(
  "fields",
  [
    dict(query_after_cell=True),  # a context for a cell already run
    dict(query_after_cell=True, feeds_cell=False, query_with_input=True),
    dict(second_cell=True),  # a second cell before any query
    dict(feeds_cell=False, combine=True),  # combine without a context
  ],
)
def test_a_wiring_that_cannot_run_is_refused(fields):
  with pytest.raises(ValueError):
    attention.Wiring(**fields)


@pytest.mark.parametrize("name", list(attention.ATTENTIONS))
def test_every_table_row_builds_an_attention_with_keys(name):
  checks.check_builds(name, tiny_model(attention=name))


def test_scaled_dot_divides_the_dot_score_by_the_root_of_the_size():
  values = jax.random.normal(jax.random.key(0), (5, 16))
  query = jax.random.normal(jax.random.key(1), (16,))
  memory = attention.Memory(values, values, jnp.ones(5, bool), values[0])
  _, dot = attention.DotAttention().apply({}, query, memory)
  _, scaled = attention.DotAttention(scaled=True).apply({}, query, memory)
  np.testing.assert_allclose(scaled, jax.nn.softmax(values @ query / 4.0), rtol=1e-5)
  assert not np.allclose(dot, scaled)  # the scale changes how sharp the weights are


def test_attention_rejects_a_batched_call():
  module = attention.DotAttention()
  values = jnp.ones((2, 5, 4))
  memory = attention.Memory(values, values, jnp.ones((2, 5), bool), jnp.ones(4))
  with pytest.raises(ValueError, match="one example"):
    module.apply({}, jnp.ones(4), memory)


def test_the_readme_table_is_the_one_made_from_the_rows():
  """README.md's attention table is `table_markdown()`; `python -m jaxseq.model.attention
  --readme=README.md` rewrites it after a row changes."""
  readme = (pathlib.Path(REPO) / "README.md").read_text(encoding="utf-8")
  assert attention.with_table(readme) == readme
  for name, row in attention.ATTENTIONS.items():
    line = next(
      row_line for row_line in attention.table_markdown().splitlines() if f"`{name}`" in row_line
    )
    assert line.endswith(f"| {row.description} | {row.reference} |")


def test_the_table_command_rewrites_only_what_lies_between_the_markers(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{attention.TABLE_BEGIN}\n| old |\n{attention.TABLE_END}\nrest\n")
  assert attention.main([f"--readme={readme}"]) == 0
  assert readme.read_text() == (
    f"intro\n{attention.TABLE_BEGIN}\n{attention.table_markdown()}{attention.TABLE_END}\nrest\n"
  )
  with pytest.raises(ValueError, match="attention-table:begin"):
    attention.with_table("no markers here")


class _GrowingState(nn.Module):
  """A stateful attention whose new state is longer than its first: not a loop carry."""

  def keys(self, values):
    return values

  def init_state(self, memory):
    return jnp.zeros(memory.mask.shape)

  def __call__(self, query, memory, state):
    context, weights = attention.attend(memory.keys @ query, memory)
    return context, weights, jnp.concatenate([state, weights])


def test_the_state_slot_passes_stateless_rows_through_and_checks_a_new_state():
  values = jax.random.normal(jax.random.key(0), (5, 4))
  memory = attention.Memory(values, values, jnp.ones(5, bool), values[0])
  query = jnp.ones(4)
  step = lambda module, state: module.apply(
    {}, method=lambda m: attention.call(m, query, memory, state)
  )
  dot = attention.DotAttention()
  assert not attention.is_stateful(dot)
  assert dot.apply({}, memory, method=attention.initial_state) == ()
  context, weights, state = step(dot, ())
  expected_context, expected_weights = dot.apply({}, query, memory)
  np.testing.assert_array_equal(context, expected_context)
  np.testing.assert_array_equal(weights, expected_weights)
  assert state == ()
  growing = _GrowingState()
  assert attention.is_stateful(growing)
  with pytest.raises(ValueError, match="_GrowingState returned a state that is not shaped"):
    step(growing, jnp.zeros(5))
