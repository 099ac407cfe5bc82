"""Properties of the encoder-decoder: batching, padding, and the decoder loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.data.vocab import BOS, EOS
from jaxseq.decoding import decode
from jaxseq.model import attention
from jaxseq.model.seq2seq import Seq2Seq
from tests import attention_checks as checks
from tests.attention_checks import SRC, TGT
from tests.conftest import init_params, tiny_model

FED_LSTM = dict(attention="luong_general", input_feeding=True, cell="lstm", num_layers=2)
TUTORIAL = dict(attention="bahdanau", readout="none")  # the tutorial's decoder
VARIANTS = [dict(attention=a, bidirectional=True) for a in attention.ATTENTIONS] + [
  FED_LSTM,
  TUTORIAL,
  dict(attention="tutorial", readout="none"),
  dict(attention="bahdanau", cell="lstm", bidirectional=True, num_layers=2, dropout=0.3),
  dict(attention="conditional", cell="lstm", num_layers=2),  # the second cell on top
]


def variant_id(v: dict) -> str:
  window = f"-D{v['local_window']}" if "local_window" in v else ""
  return (
    f"{v['attention']}-{v.get('cell', 'gru')}{'-l2' if v.get('num_layers') else ''}"
    f"{'-' + v['readout'] if 'readout' in v else ''}{window}"
  )


IDS = [variant_id(v) for v in VARIANTS]

_tf = checks.teacher_forced
_greedy = jax.jit(decode.greedy, static_argnames=("model", "max_len"))


# Compiling is most of a test's cost on CPU: the batch and loop properties are checked on
# three variants that together cover every wiring of decode_step (a query before the cell
# with the readout, Luong's after it with input feeding and stacked LSTMs, the tutorial's
# query with input and combine layer without a readout); padding, with its gradients, on
# every row of the table and every variant. The two local attentions run them too, with a
# window narrower than the sentences (local-m keeps a state, its step counter); the
# `coverage` row, the other with a state, runs them in tests/test_extending.py.
LOCAL = [
  dict(attention="luong_local_m", local_window=1, bidirectional=True),
  dict(attention="luong_local_p", local_window=1, bidirectional=True),
]
FEW = [
  dict(attention="bahdanau", bidirectional=True),
  FED_LSTM,
  dict(attention="tutorial", readout="none"),
  *LOCAL,
]
FEW_IDS = [variant_id(v) for v in FEW]


@pytest.mark.parametrize("fields", FEW, ids=FEW_IDS)
def test_vmapped_batch_equals_a_loop_over_examples(fields):
  model = tiny_model(**fields)
  checks.check_batch_equals_loop(model, init_params(model))


@pytest.mark.parametrize("fields", VARIANTS, ids=IDS)
def test_padding_changes_no_output_no_gradient_and_gets_no_attention(fields):
  """Every row of the attention table: the padded source gives the same logits, loss and
  gradients, and the weights are a distribution over the real positions (all zero for the
  fixed context)."""
  model = tiny_model(**fields)
  checks.check_padding(model, init_params(model))


@pytest.mark.parametrize("fields", LOCAL, ids=[variant_id(v) for v in LOCAL])
def test_a_narrow_window_is_blind_to_padding_too(fields):
  """With a window of one position either side, narrower than the 3 real positions of the
  padded source, the window's centre still comes from the real length: padding changes
  no output and no gradient, and gets no weight (a real position outside the window may
  have none either)."""
  model = tiny_model(**fields)
  checks.check_padding(model, init_params(model), all_real=False)


@pytest.mark.parametrize("fields", FEW, ids=FEW_IDS)
def test_scan_equals_a_python_loop(fields):
  model = tiny_model(**fields)
  checks.check_scan_equals_loop(model, init_params(model))


def test_teacher_forcing_one_always_feeds_the_reference():
  model = tiny_model()
  params = init_params(model)
  a, _ = _tf(model, params, SRC[0], TGT[0], jax.random.key(1), teacher_forcing_ratio=1.0)
  b, _ = _tf(model, params, SRC[0], TGT[0], jax.random.key(2), teacher_forcing_ratio=1.0)
  np.testing.assert_allclose(a, b, atol=1e-6)  # no randomness left without dropout


def test_teacher_forcing_zero_feeds_the_models_own_predictions():
  model = tiny_model()
  params = init_params(model, seed=5)
  src = SRC[2]
  logits, _ = _tf(model, params, src, TGT[2], teacher_forcing_ratio=0.0)
  own = jnp.argmax(logits, -1)
  # Feeding the model's own argmax is what greedy decoding does, whatever the reference.
  tokens = _greedy(model, params, src, max_len=TGT.shape[1]).tokens
  stop = int(np.argmax(np.asarray(tokens) == EOS)) if (tokens == EOS).any() else len(tokens)
  np.testing.assert_array_equal(own[: stop + 1], tokens[: stop + 1])
  # And it differs from feeding the reference, which the model has not learnt.
  forced, _ = _tf(model, params, src, TGT[2], teacher_forcing_ratio=1.0)
  assert not np.allclose(forced, logits)


def test_greedy_stops_at_eos_and_pads_after_it():
  model = tiny_model()
  params = init_params(model)
  # Make EOS the most likely token from the second step on: bias the output layer.
  bias = params["params"]["output"]["bias"]
  params["params"]["output"]["bias"] = bias.at[EOS].set(100.0)
  tokens, attn, length, _ = _greedy(model, params, SRC[0], max_len=7)
  assert int(length) == 0 and int(tokens[0]) == EOS
  np.testing.assert_array_equal(tokens[1:], 0)
  np.testing.assert_array_equal(attn[1:], 0.0)


def test_batched_greedy_equals_one_at_a_time():
  model = tiny_model(attention="luong_dot", bidirectional=True)
  params = init_params(model, seed=3)
  tokens, attn, length, _ = decode.batch_greedy(model, params, SRC, max_len=6)
  for i in range(SRC.shape[0]):
    t, a, n, _ = _greedy(model, params, SRC[i], max_len=6)
    np.testing.assert_array_equal(tokens[i], t)
    np.testing.assert_allclose(attn[i], a, atol=1e-6)
    assert int(length[i]) == int(n)


def test_encoder_rejects_a_batched_source():
  model = tiny_model()
  params = init_params(model)
  with pytest.raises(ValueError, match="one sentence"):
    model.apply(params, SRC, method=Seq2Seq.encode)


def test_the_readout_stays_in_the_recurrence_when_it_is_fed_back():
  fed = tiny_model(attention="luong_general", input_feeding=True)
  assert not fed.readout_outside_recurrence
  assert tiny_model(attention="luong_dot").readout_outside_recurrence
  params = init_params(fed)
  memory, state = fed.apply(params, SRC[0], method=Seq2Seq.encode)
  emb = fed.apply(params, jnp.int32(BOS), method=Seq2Seq.embed_target)
  with pytest.raises(ValueError, match="input_feeding=False"):
    fed.apply(params, memory, state, emb, readout=False, method=Seq2Seq.decode_hidden)


def test_readout_none_is_the_tutorials_decoder():
  """One step written out as the PyTorch tutorial's AttnDecoderRNN computes it, from the
  model's own parameters: additive attention on h_{t-1}, GRU([emb; c], h_{t-1}), out(h_t)."""
  model = tiny_model(**TUTORIAL)
  params = init_params(model, seed=2)
  p = params["params"]
  assert "attentional" not in p and "combine" not in p  # no layer the tutorial lacks
  src = SRC[0]
  memory, state = model.apply(params, src, method=Seq2Seq.encode)
  new_state, logits, weights = model.apply(
    params, memory, state, jnp.int32(BOS), method=Seq2Seq.decode_step
  )

  att, cell = p["attention"], p["decoder0"]
  h = state.cells[0]
  keys = memory.values @ att["key"]["kernel"]
  energy = jnp.tanh(h @ att["query"]["kernel"] + att["query"]["bias"] + keys)
  scores = (energy @ att["energy"]["kernel"])[:, 0]
  expected_weights = jax.nn.softmax(jnp.where(memory.mask, scores, -jnp.inf))
  context = expected_weights @ memory.values
  x = jnp.concatenate([p["tgt_embed"]["embedding"][BOS], context])
  x_r, x_z, x_n = jnp.split(x @ cell["input"]["kernel"] + cell["input"]["bias"], 3)
  h_r, h_z, h_n = jnp.split(h @ cell["recurrent_kernel"] + cell["recurrent_bias"], 3)
  r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
  new_h = (1 - z) * jnp.tanh(x_n + r * h_n) + z * h
  np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
  np.testing.assert_allclose(new_state.cells[0], new_h, atol=1e-5)
  np.testing.assert_allclose(logits, new_h @ p["output"]["kernel"] + p["output"]["bias"], atol=1e-5)


@pytest.mark.parametrize(
  "fields, field",
  [
    (dict(attention="luong_dot", readout="none"), "model.readout"),
    (dict(attention="bahdanau", readout="none", input_feeding=True), "model.input_feeding"),
  ],
)
def test_a_readout_that_would_cut_the_context_off_is_refused(fields, field):
  from jaxseq.model import seq2seq

  problem = seq2seq.wiring_problem(
    fields["attention"], fields["readout"], fields.get("input_feeding", False)
  )
  assert problem is not None and problem[0] == field
  with pytest.raises(ValueError, match=field):
    init_params(tiny_model(**fields))


def _gru(cell: dict, x, h):
  """A GRU step written out from a cell's parameters (reset gate after the product)."""
  x_r, x_z, x_n = jnp.split(x @ cell["input"]["kernel"] + cell["input"]["bias"], 3)
  h_r, h_z, h_n = jnp.split(h @ cell["recurrent_kernel"] + cell["recurrent_bias"], 3)
  r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
  return (1 - z) * jnp.tanh(x_n + r * h_n) + z * h


def test_conditional_is_two_cells_around_the_attention():
  """One step of attention="conditional" written out: h' = GRU1(emb, h_{t-1}); additive
  attention asked by h'; h_t = GRU2(c_t, h'); logits from tanh(W [c_t; h_t])."""
  model = tiny_model(attention="conditional", bidirectional=True)
  params = init_params(model, seed=4)
  p = params["params"]
  memory, state = model.apply(params, SRC[2], method=Seq2Seq.encode)
  new_state, logits, weights = model.apply(
    params, memory, state, jnp.int32(BOS), method=Seq2Seq.decode_step
  )
  first = _gru(p["decoder0"], p["tgt_embed"]["embedding"][BOS], state.cells[0])
  att = p["attention"]
  energy = jnp.tanh(
    first @ att["query"]["kernel"] + att["query"]["bias"] + memory.values @ att["key"]["kernel"]
  )
  expected_weights = jax.nn.softmax((energy @ att["energy"]["kernel"])[:, 0])
  context = expected_weights @ memory.values
  h = _gru(p["second_cell"], context, first)
  out = jnp.tanh(jnp.concatenate([context, h]) @ p["attentional"]["kernel"])
  np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
  np.testing.assert_allclose(new_state.cells[0], h, atol=1e-5)
  np.testing.assert_allclose(logits, out @ p["output"]["kernel"] + p["output"]["bias"], atol=1e-5)
  # The context reaches the state through the second cell, so a readout of h alone is
  # allowed here, unlike with Luong's scores.
  from jaxseq.model import seq2seq

  assert seq2seq.wiring_problem("conditional", "none", False) is None
  assert seq2seq.wiring_problem("luong_general", "none", False) is not None
