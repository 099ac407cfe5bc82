"""bfloat16 compute with float32 parameters: it runs, stays float32 where it must,
and its loss stays close to the float32 loss of the same parameters."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxseq.decoding import decode
from jaxseq.model import seq2seq
from jaxseq.training import steps


def _models(**overrides):
  m = default.get_model_config()
  m.update(embed_size=16, hidden_size=32, attention_size=16, max_length=8, **overrides)
  f32 = seq2seq.from_config(m, 20, 24)
  m.dtype = "bfloat16"
  return f32, seq2seq.from_config(m, 20, 24)


def _batch(seed=0, batch=4, length=8):
  rng = np.random.default_rng(seed)
  src = rng.integers(3, 20, (batch, length)).astype(np.int32)
  tgt = rng.integers(3, 24, (batch, length)).astype(np.int32)
  src[:, 6:] = 0  # padding on the source
  tgt[:, 5:] = 0
  tgt_in = np.concatenate([np.ones((batch, 1), np.int32), tgt[:, :-1]], axis=1)
  return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt}


@functools.partial(jax.jit, static_argnums=0)
def _loss(model, params, batch):
  keys = jax.random.split(jax.random.key(0), batch["src"].shape[0])
  logits, _ = decode.batch_teacher_forced(model, params, batch["src"], batch["tgt_in"], keys)
  sums = steps.token_sums(logits, batch["tgt_out"])
  return sums["loss"] / sums["tokens"], logits


@pytest.mark.parametrize(
  "overrides",
  [
    dict(cell="gru", bidirectional=True, attention="bahdanau"),
    dict(cell="lstm", bidirectional=False, attention="luong_general", input_feeding=True),
  ],
)
def test_bfloat16_loss_is_close_to_float32(overrides):
  f32, bf16 = _models(**overrides)
  params = f32.init(jax.random.key(1), jnp.ones((2,), jnp.int32), jnp.int32(1))
  batch = _batch()
  loss32, _ = _loss(f32, params, batch)
  loss16, logits16 = _loss(bf16, params, batch)
  assert logits16.dtype == jnp.float32  # the loss is taken in float32
  assert np.isfinite(float(loss16))
  np.testing.assert_allclose(float(loss16), float(loss32), rtol=2e-2)
  assert float(loss16) != float(loss32)  # it really computed something in bfloat16


def test_bfloat16_keeps_float32_parameters_and_gradients_and_uses_bf16_matmuls():
  f32, bf16 = _models()
  params = bf16.init(jax.random.key(1), jnp.ones((2,), jnp.int32), jnp.int32(1))
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  batch = _batch()
  grads = jax.jit(jax.grad(lambda p: _loss(bf16, p, batch)[0]))(params)
  assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
  text = _loss.lower(bf16, params, batch).as_text()
  assert "bf16" in text and "dot_general" in text
  assert "bf16" not in _loss.lower(f32, params, batch).as_text()
