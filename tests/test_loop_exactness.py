"""The rewritten training loops compute the loss and gradients of the plain ones.

The encoder's recurrence has its own VJP (jaxseq/model/recurrence.py) and teacher forcing
projects the target embeddings before the decoder loop; tests/reference_loops.py keeps
the plain loops that `jax.grad` differentiates. Every variant of the per-row tests is
checked (every attention row; GRU and LSTM, one and two layers, one and two directions,
input feeding and dropout on and off: the random streams are the same), on a batch with
padding in source and target.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.decoding import decode
from tests import reference_loops
from tests import test_model as model_tests
from tests.attention_checks import SRC, TGT
from tests.conftest import init_params, tiny_model

# The variants of the per-row tests (tests/test_model.py): every row with a bidirectional
# GRU, Luong's score with input feeding over two LSTM layers, the tutorial's two decoders,
# a two-layer bidirectional LSTM with dropout, and the conditional GRU over two LSTM layers.
VARIANTS, IDS = model_tests.VARIANTS, model_tests.IDS
SOMETIMES = [VARIANTS.index(model_tests.FED_LSTM), VARIANTS.index(model_tests.TUTORIAL)]
KEYS = jax.random.split(jax.random.key(3), SRC.shape[0])
TOLERANCE = 1e-5


def _loss(forward):
  """Summed log-likelihood of TGT's next tokens over the real positions, as a function of
  the parameters (SRC and TGT both have padding)."""

  def loss(params):
    logits, weights = forward(params)
    targets = jnp.concatenate([TGT[:, 1:], jnp.zeros_like(TGT[:, :1])], axis=1)
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1)[..., 0]
    return jnp.sum(log_probs * (targets != 0)), weights

  return jax.jit(jax.value_and_grad(loss, has_aux=True))


def _max_difference(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _compare(model, params, library, reference):
  (loss, weights), grads = _loss(library)(params)
  with reference_loops.plain_loops():
    (ref_loss, ref_weights), ref_grads = _loss(reference)(params)
  assert jax.tree.structure(grads) == jax.tree.structure(ref_grads)
  np.testing.assert_allclose(loss, ref_loss, atol=TOLERANCE, rtol=0)
  np.testing.assert_allclose(weights, ref_weights, atol=TOLERANCE, rtol=0)
  assert _max_difference(grads, ref_grads) <= TOLERANCE
  assert float(jnp.max(jnp.abs(jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads)])))) > 0


@pytest.mark.parametrize("fields", VARIANTS, ids=IDS)
def test_teacher_forced_loss_and_gradients_match_the_plain_loops(fields):
  model = tiny_model(**fields)
  params = init_params(model)
  train = fields.get("dropout", 0.0) > 0
  forcing = decode.Forcing(1.0, train)
  library = lambda p: decode.batch_teacher_forced(model, p, SRC, TGT, KEYS, forcing)
  reference = lambda p: jax.vmap(
    lambda s, t, k: reference_loops.plain_teacher_forced(model, p, s, t, k, train)
  )(SRC, TGT, KEYS)
  _compare(model, params, library, reference)


@pytest.mark.parametrize(
  "fields", [VARIANTS[i] for i in SOMETIMES], ids=[IDS[i] for i in SOMETIMES]
)
def test_sometimes_forced_loss_and_gradients_match_the_plain_encoder(fields):
  model = tiny_model(**fields)
  params = init_params(model)
  forcing = decode.Forcing(0.5, train=True)
  library = lambda p: decode.batch_teacher_forced(model, p, SRC, TGT, KEYS, forcing)
  reference = lambda p: jax.vmap(
    lambda s, t, k: reference_loops.plain_sometimes_forced(model, p, s, t, k, forcing)
  )(SRC, TGT, KEYS)
  _compare(model, params, library, reference)
