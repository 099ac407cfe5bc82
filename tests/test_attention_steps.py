"""The coverage and local attentions: one decoder step of each written out by hand in numpy
from the model's parameters, and the edges of the local windows.

The per-row properties (a distribution with no weight on padding, padding-independent
outputs and gradients, batch and scan equal to loops) are checked for every row in
tests/test_model.py and tests/test_extending.py; what they cannot know is each formula.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.data.vocab import BOS
from jaxseq.model import attention
from jaxseq.model.seq2seq import Seq2Seq
from tests.attention_checks import SRC, TGT
from tests.conftest import init_params, tiny_model


def _np(tree):
  """Every leaf as a float64 numpy array."""
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def _gru(cell: dict, x, h):
  """A GRU step written out from a cell's parameters (reset gate after the product)."""
  x_r, x_z, x_n = np.split(x @ cell["input"]["kernel"] + cell["input"]["bias"], 3)
  h_r, h_z, h_n = np.split(h @ cell["recurrent_kernel"] + cell["recurrent_bias"], 3)
  r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
  return (1 - z) * np.tanh(x_n + r * h_n) + z * h


def _softmax_over(scores, support):
  """softmax of scores over the positions where support is True; 0 elsewhere."""
  e = np.where(support, np.exp(scores - scores[support].max()), 0.0)
  return e / e.sum()


def _logits(p: dict, context, h):
  """The attentional readout tanh(W_c [c_t; h_t]) (Luong Eq. 5), then the output layer."""
  out = np.tanh(np.concatenate([context, h]) @ p["attentional"]["kernel"])
  return out @ p["output"]["kernel"] + p["output"]["bias"]


def _run(model, params, src, tokens):
  """(memory, the decoder state after feeding `tokens`, the weights of those steps)."""
  memory, state = model.apply(params, src, method=Seq2Seq.encode)
  step = jax.jit(lambda st, tok: model.apply(params, memory, st, tok, method=Seq2Seq.decode_step))
  weights = []
  for token in tokens:
    state, _, w = step(state, jnp.int32(token))
    weights.append(np.asarray(w, np.float64))
  return memory, state, step, weights


def _check_step(new_state, logits, weights, expected_weights, expected_h, expected_logits):
  np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
  np.testing.assert_allclose(new_state.cells[0], expected_h, atol=1e-5)
  np.testing.assert_allclose(logits, expected_logits, atol=1e-5)


def test_coverage_is_the_additive_score_with_the_sum_of_past_weights():
  """Step t = 2 of attention="coverage": c = a_0 + a_1; e_i = v^T tanh(W s_{t-1} + b + U h_i
  + w_c c_i); a = softmax over the real positions; the context joins the cell input
  (Bahdanau's wiring); the new state is c + a."""
  model = tiny_model(attention="coverage", bidirectional=True)
  params = init_params(model, seed=4)
  src, tgt = SRC[0], TGT[0]  # 4 real source tokens, then padding
  memory, state, step, (a0, a1) = _run(model, params, src, tgt[:2])
  token = int(tgt[2])
  new_state, logits, weights = step(state, jnp.int32(token))

  p, att = _np(params["params"]), _np(params["params"]["attention"])
  values, mask = np.asarray(memory.values, np.float64), np.asarray(memory.mask)
  coverage, h = a0 + a1, np.asarray(state.cells[0], np.float64)
  np.testing.assert_allclose(state.attention, coverage, atol=1e-6)
  term = coverage[:, None] * att["coverage"]["kernel"][0]  # w_c c_i: [src_len, size]
  assert np.abs(term[mask]).max() > 0.1  # the coverage term is not negligible here
  features = values @ att["key"]["kernel"] + h @ att["query"]["kernel"] + att["query"]["bias"]
  scores = np.tanh(features + term) @ att["energy"]["kernel"][:, 0]
  expected = _softmax_over(scores, mask)
  context = expected @ values
  new_h = _gru(p["decoder0"], np.concatenate([p["tgt_embed"]["embedding"][token], context]), h)
  _check_step(new_state, logits, weights, expected, new_h, _logits(p, context, new_h))
  np.testing.assert_allclose(new_state.attention, coverage + expected, atol=1e-5)
  np.testing.assert_array_equal(new_state.attention[~mask], 0.0)  # padding is never covered


@pytest.mark.parametrize(
  "src, steps_before",
  [(SRC[2], 3), (SRC[0], 5)],
  ids=["inside", "past-the-end"],
)
def test_local_m_is_the_general_score_in_a_window_around_the_step(src, steps_before):
  """Step t of attention="luong_local_m", window D = 1: h_t = GRU(emb, h_{t-1}); scores
  h_t^T W_a h_s; a = softmax over the real positions s with |s - p_t| <= 1, p_t = t, or
  S - 1 once t passes the last real position (SRC[0] has S = 4: t = 5 -> p_t = 3)."""
  model = tiny_model(attention="luong_local_m", local_window=1, bidirectional=True)
  params = init_params(model, seed=5)
  tokens = [BOS, 5, 6, 7, 8, 9][:steps_before]
  memory, state, step, _ = _run(model, params, src, tokens)
  assert int(state.attention) == steps_before  # the step counter
  new_state, logits, weights = step(state, jnp.int32(10))

  p = _np(params["params"])
  values, mask = np.asarray(memory.values, np.float64), np.asarray(memory.mask)
  h = _gru(p["decoder0"], p["tgt_embed"]["embedding"][10], np.asarray(state.cells[0], np.float64))
  scores = (values @ p["attention"]["key"]["kernel"]) @ h
  centre = min(steps_before, mask.sum() - 1)
  window = mask & (np.abs(np.arange(len(mask)) - centre) <= 1)
  assert window.sum() < mask.sum()  # the window leaves real positions out
  expected = _softmax_over(scores, window)
  _check_step(new_state, logits, weights, expected, h, _logits(p, expected @ values, h))
  np.testing.assert_array_equal(np.asarray(weights)[~window], 0.0)
  assert int(new_state.attention) == steps_before + 1


@pytest.mark.parametrize("src", [SRC[2], SRC[0]], ids=["full", "padded"])
def test_local_p_is_the_general_score_in_a_window_times_a_gaussian(src):
  """The first step of attention="luong_local_p", window D = 1 (sigma = 1/2): p_t = S *
  sigmoid(v_p^T tanh(W_p h_t)); a = softmax of h_t^T W_a h_s over the real positions with
  |s - p_t| <= 1, times exp(-(s - p_t)^2 / (2 sigma^2)), renormalised."""
  model = tiny_model(attention="luong_local_p", local_window=1, bidirectional=True)
  params = init_params(model, seed=6)
  memory, state = model.apply(params, src, method=Seq2Seq.encode)
  new_state, logits, weights = model.apply(
    params, memory, state, jnp.int32(BOS), method=Seq2Seq.decode_step
  )
  assert new_state.attention == ()  # local-p keeps no state: p_t comes from h_t

  p, att = _np(params["params"]), _np(params["params"]["attention"])
  values, mask = np.asarray(memory.values, np.float64), np.asarray(memory.mask)
  h = _gru(p["decoder0"], p["tgt_embed"]["embedding"][BOS], np.asarray(state.cells[0], np.float64))
  hidden = np.tanh(h @ att["position_hidden"]["kernel"])
  centre = mask.sum() * _sigmoid(hidden @ att["position_out"]["kernel"][:, 0])
  positions = np.arange(len(mask))
  window = mask & (np.abs(positions - centre) <= 1)
  assert 0 < window.sum() < mask.sum()
  product = _softmax_over(values @ att["key"]["kernel"] @ h, window) * np.exp(
    -((positions - centre) ** 2) / (2 * 0.5**2)
  )
  expected = product / product.sum()
  _check_step(new_state, logits, weights, expected, h, _logits(p, expected @ values, h))
  np.testing.assert_array_equal(np.asarray(weights)[~window], 0.0)


def _memory(real: int, src_len: int = 7, size: int = 4) -> attention.Memory:
  values = jax.random.normal(jax.random.key(0), (src_len, size))
  mask = jnp.arange(src_len) < real
  return attention.Memory(values * mask[:, None], values, mask, values[0])


def test_local_m_windows_at_both_ends_and_past_a_short_source():
  module = attention.LocalMonotonicAttention(query_size=4, window=1)
  memory = _memory(real=3)
  params = module.init(jax.random.key(1), jnp.ones(4), memory, jnp.int32(0))
  query = jax.random.normal(jax.random.key(2), (4,))
  call = lambda step, m=memory: module.apply(params, query, m, jnp.int32(step))
  for step, support in [(0, [0, 1]), (1, [0, 1, 2]), (2, [1, 2]), (9, [1, 2])]:
    _, weights, new_step = call(step)
    assert int(new_step) == step + 1
    assert set(np.flatnonzero(np.asarray(weights))) == set(support), step
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
  context, weights, _ = call(0, _memory(real=0))  # no real position at all
  assert np.isfinite(context).all()
  np.testing.assert_array_equal(weights, 0.0)


def test_local_p_windows_at_both_ends_and_with_no_real_position():
  """p_t saturates at 0 and at S (sigmoid of a huge pre-activation): the window keeps its
  real positions at that end and sums to one; with no real position the weights are zero,
  and neither they nor their gradient are NaN."""
  module = attention.LocalPredictiveAttention(query_size=4, size=3, window=1)
  memory = _memory(real=4)
  query = jnp.ones(4)
  params = module.init(jax.random.key(1), query, memory)
  out = params["params"]["position_out"]["kernel"]
  for sign, support in [(-1.0, [0, 1]), (1.0, [3])]:
    pushed = {
      "params": {**params["params"], "position_out": {"kernel": jnp.full_like(out, 100.0 * sign)}}
    }
    pushed["params"]["position_hidden"] = {"kernel": jnp.full((4, 3), 100.0)}
    centre = module.apply(pushed, query, memory.mask, method="position")
    np.testing.assert_allclose(centre, 0.0 if sign < 0 else 4.0, atol=1e-3)
    _, weights = module.apply(pushed, query, memory)
    assert set(np.flatnonzero(np.asarray(weights))) == set(support), sign
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
  empty = _memory(real=0)
  loss = lambda q: jnp.sum(module.apply(params, q, empty)[0])
  context, weights = module.apply(params, query, empty)
  np.testing.assert_array_equal(weights, 0.0)
  assert np.isfinite(context).all() and np.isfinite(jax.grad(loss)(query)).all()
