"""The checks that every row of the attention table must pass, as functions.

tests/test_model.py and tests/test_attention.py run them on every row of
`attention.ATTENTIONS` (and on the other decoder variants), tests/test_extending.py on the
rows that docs/extending.md adds; one definition, so a new row meets the same checks.
Each takes a model built with the row and its parameters, and fails with an assertion.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseq.data.vocab import BOS
from jaxseq.decoding import decode
from jaxseq.model import attention
from jaxseq.model.seq2seq import Seq2Seq

SRC = jnp.array([[4, 7, 5, 9, 0, 0], [6, 0, 0, 0, 0, 0], [3, 8, 8, 4, 5, 10]], jnp.int32)
TGT = jnp.array([[BOS, 5, 6, 7, 0], [BOS, 8, 0, 0, 0], [BOS, 4, 4, 9, 12]], jnp.int32)
PADDED = jnp.array([4, 7, 5, 0, 0, 0, 0], jnp.int32)  # 3 real tokens, then padding

_teacher_forced = jax.jit(decode.teacher_forced, static_argnames=("model", "forcing"))
_batch_teacher_forced = jax.jit(decode.batch_teacher_forced, static_argnames=("model",))


def teacher_forced(model, params, src, tgt, key=None, *, teacher_forcing_ratio=1.0, train=False):
  """The compiled `decode.teacher_forced` of one pair: (logits, weights)."""
  key = jax.random.key(0) if key is None else key
  forcing = decode.Forcing(teacher_forcing_ratio, train)
  return _teacher_forced(model, params, src, tgt, key, forcing=forcing)


def check_builds(name: str, model: Seq2Seq):
  """The row has a wiring and a reference, and builds a module with `keys`."""
  entry = attention.entry(name)
  assert isinstance(entry.wiring, attention.Wiring) and entry.reference and entry.description
  assert callable(entry.build(model.config).keys)


def check_weights(model: Seq2Seq, weights, real: int, *, all_real: bool = True):
  """weights [tgt_len, src_len]: a distribution over the first `real` positions, exactly
  zero on the padding after them (all zero for the fixed context, which has none), and
  positive on every real position; all_real=False (a local attention's window narrower
  than the sentence) lets a real position have zero weight."""
  np.testing.assert_array_equal(weights[:, real:], 0.0)
  config = model.config
  if isinstance(attention.entry(config.attention).build(config), attention.FixedContext):
    np.testing.assert_array_equal(weights, 0.0)
  else:
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert (weights[:, :real] > 0).all() if all_real else (weights >= 0).all()


def check_padding(model: Seq2Seq, params, *, all_real: bool = True):
  """Padding the source changes neither the logits, nor the weights of the real positions,
  nor the loss and its gradients (dropout on, same keys); the weights pass `check_weights`
  (with `all_real`)."""

  def loss(p, src):
    logits, weights = teacher_forced(model, p, src, TGT[0], train=True)
    return jnp.sum(jax.nn.log_softmax(logits)[:, 2]), (logits, weights)

  grad_fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
  (l1, (lg1, w1)), g1 = grad_fn(params, PADDED[:3])
  (l2, (lg2, w2)), g2 = grad_fn(params, PADDED)
  np.testing.assert_allclose(lg1, lg2, atol=1e-5)
  np.testing.assert_allclose(w1, w2[:, :3], atol=1e-6)
  check_weights(model, w2, real=3, all_real=all_real)
  np.testing.assert_allclose(l1, l2, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g1, g2)


def check_batch_equals_loop(model: Seq2Seq, params):
  """The vmapped batch gives each example what it gets alone."""
  keys = jax.random.split(jax.random.key(3), SRC.shape[0])
  logits, weights = _batch_teacher_forced(model, params, SRC, TGT, keys)
  for i in range(SRC.shape[0]):
    one_logits, one_weights = teacher_forced(model, params, SRC[i], TGT[i], keys[i])
    np.testing.assert_allclose(logits[i], one_logits, atol=1e-5)
    np.testing.assert_allclose(weights[i], one_weights, atol=1e-6)


def check_scan_equals_loop(model: Seq2Seq, params):
  """The teacher-forced scan gives what a Python loop over `decode_step` gives."""
  src, tgt = SRC[0], TGT[2]
  logits, weights = teacher_forced(model, params, src, tgt)
  memory, state = jax.jit(lambda p, s: model.apply(p, s, method=Seq2Seq.encode))(params, src)
  step = jax.jit(lambda p, m, st, tok: model.apply(p, m, st, tok, method=Seq2Seq.decode_step))
  for t in range(tgt.shape[0]):
    state, step_logits, step_weights = step(params, memory, state, tgt[t])
    np.testing.assert_allclose(logits[t], step_logits, atol=1e-5)
    np.testing.assert_allclose(weights[t], step_weights, atol=1e-6)
