"""Decoder loops for one sentence, and their batched forms.

`teacher_forced` scans the decoder over the target positions (training and scoring):
with the reference always fed, only `Seq2Seq.decode_hidden` (the recurrence) is in the
`lax.scan`; otherwise the whole `decode_step`. `greedy` feeds back its own argmax until
EOS. Both take one example; `batch_teacher_forced` and `batch_greedy` are the `jax.vmap`s
that the rest of the library calls.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxseq.model import Seq2Seq
from jaxseq.vocab import BOS, EOS, PAD

Array = jax.Array


def teacher_forced(model: Seq2Seq, params, src: Array, tgt_in: Array, key: Array, *,
                   teacher_forcing_ratio: float = 1.0, train: bool = False
                   ) -> tuple[Array, Array]:
  """Scores one sentence pair position by position.

  At each step the reference token tgt_in[t] is fed with probability
  `teacher_forcing_ratio` (drawn per step from `key`), otherwise the model's own
  previous argmax; the first step always feeds tgt_in[0] (BOS). At ratio 1.0 (a
  Python float, static under jit) only the recurrence is scanned: the embedding lookup
  and the output layers run outside the scan, on all positions at once.

  src: [src_len] int; tgt_in: [tgt_len] int (BOS y_1 ... y_n, padded with 0).
  Returns logits [tgt_len, tgt_vocab] and attention weights [tgt_len, src_len].
  """
  if src.ndim != 1 or tgt_in.ndim != 1:
    raise ValueError(f"teacher_forced takes one sentence pair, got {src.shape}, {tgt_in.shape}")
  enc_key, step_key, emb_key, out_key = jax.random.split(key, 4)
  memory, state = model.apply(params, src, train=train, method=Seq2Seq.encode,
                              rngs={"dropout": enc_key})
  step_keys = jax.random.split(step_key, tgt_in.shape[0])
  if teacher_forcing_ratio == 1.0:
    return _always_forced(model, params, memory, state, tgt_in, step_keys, emb_key, out_key,
                          train)
  return _sometimes_forced(model, params, memory, state, tgt_in, step_keys,
                           teacher_forcing_ratio, train)


def _always_forced(model, params, memory, state, tgt_in, step_keys, emb_key, out_key, train):
  """Every input is the reference, so nothing in the scan needs the previous logits.

  The embeddings are looked up before the scan, and the attentional and output layers
  run after it, each once on all positions.
  """
  embedded = model.apply(params, tgt_in, train=train, method=Seq2Seq.embed_target,
                         rngs={"dropout": emb_key})
  hoist = model.readout_outside_recurrence

  def body(state, inputs):
    emb, k = inputs
    state, out, weights = model.apply(params, memory, state, emb, train=train,
                                      readout=not hoist, method=Seq2Seq.decode_hidden,
                                      rngs={"dropout": k})
    return state, (out, weights)

  _, (outs, weights) = lax.scan(body, state, (embedded, step_keys), unroll=model.scan_unroll)
  logits = model.apply(params, outs, train=train, readout=hoist, method=Seq2Seq.logits,
                       rngs={"dropout": out_key})
  return logits, weights


def _sometimes_forced(model, params, memory, state, tgt_in, step_keys, ratio, train):
  """A coin per position decides between the reference and the previous argmax."""

  def body(carry, inputs):
    state, prev_pred = carry  # decoder state; the model's last argmax []
    reference, k = inputs
    force_key, dropout_key = jax.random.split(k)
    forced = jax.random.uniform(force_key) < ratio
    token = jnp.where(forced, reference, prev_pred)
    state, logits, weights = model.apply(
        params, memory, state, token, train=train, method=Seq2Seq.decode_step,
        rngs={"dropout": dropout_key})
    return (state, jnp.argmax(logits).astype(tgt_in.dtype)), (logits, weights)

  _, (logits, weights) = lax.scan(body, (state, tgt_in[0]), (tgt_in, step_keys),
                                  unroll=model.scan_unroll)
  return logits, weights


def greedy(model: Seq2Seq, params, src: Array, *, max_len: int) -> tuple[Array, Array, Array]:
  """Greedy decoding of one sentence, stopping at EOS.

  The loop is a `lax.while_loop` over fixed-size buffers, so it compiles once per
  (src_len, max_len); under `vmap` it runs until every sentence of the batch ended.

  Returns tokens [max_len] (EOS included, then PAD), attention [max_len, src_len] (zero
  after EOS), and length [] (tokens before EOS).
  """
  memory, state = model.apply(params, src, method=Seq2Seq.encode)
  src_len = src.shape[0]
  tokens = jnp.full((max_len,), PAD, jnp.int32)
  attn = jnp.zeros((max_len, src_len), memory.values.dtype)

  def cond(loop):
    t, _, _, _, done = loop
    return (t < max_len) & ~done

  def body(loop):
    t, state, tokens, attn, _ = loop
    prev = jnp.where(t == 0, BOS, tokens[jnp.maximum(t - 1, 0)])
    state, logits, weights = model.apply(params, memory, state, prev,
                                         method=Seq2Seq.decode_step)
    token = jnp.argmax(logits).astype(jnp.int32)
    return (t + 1, state, tokens.at[t].set(token), attn.at[t].set(weights), token == EOS)

  loop = (jnp.int32(0), state, tokens, attn, jnp.bool_(False))
  _, _, tokens, attn, _ = lax.while_loop(cond, body, loop)
  is_eos = tokens == EOS
  length = jnp.where(is_eos.any(), jnp.argmax(is_eos), max_len)
  return tokens, attn, length


# The one place where sentences become batches (callers jit them).
def batch_teacher_forced(model, params, src, tgt_in, keys, *, teacher_forcing_ratio=1.0,
                         train=False):
  """src [batch, src_len], tgt_in [batch, tgt_len], keys [batch] -> per-example outputs."""
  fn = functools.partial(teacher_forced, model, params,
                         teacher_forcing_ratio=teacher_forcing_ratio, train=train)
  return jax.vmap(fn)(src, tgt_in, keys)


def batch_greedy(model, params, src, *, max_len):
  """src [batch, src_len] -> tokens [batch, max_len], attn [batch, max_len, src_len], length [batch]."""
  return jax.vmap(functools.partial(greedy, model, params, max_len=max_len))(src)
