"""Decoder loops for one sentence, and their batched forms.

`teacher_forced` scans the decoder over the target positions (training and scoring):
with the reference always fed, only `Seq2Seq.decode_hidden` (the recurrence) is in the
`lax.scan`; otherwise the whole `decode_step`. `greedy` feeds back its own argmax until
EOS, `sample` a token drawn from the (tempered, truncated) distribution; both may be
forced to begin with a given target prefix and take one model or an ensemble
(`jaxseq/decoding/ensemble.py`). Each takes one example; the `batch_*` functions are the
`jax.vmap`s that the rest of the library calls.

References:
  Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration" (nucleus, top-p,
    sampling); Fan et al. 2018 (top-k sampling); Edunov et al. 2018, "Understanding
    Back-Translation at Scale" (sampled back-translations).
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxseq.data.vocab import BOS, EOS, PAD
from jaxseq.decoding import ensemble
from jaxseq.model.seq2seq import Seq2Seq

Array = jax.Array


class Forcing(NamedTuple):
  """How `teacher_forced` feeds the decoder (hashable: static under jit)."""

  ratio: float = 1.0  # probability of feeding the reference token at each step
  train: bool = False  # dropout on


ALWAYS = Forcing()  # the reference at every step, no dropout


class _Keys(NamedTuple):
  """The random streams of one teacher-forced sentence."""

  steps: Array  # [tgt_len] one key per decoder step
  embed: Array  # the target embeddings' dropout
  output: Array  # the output layer's dropout


def teacher_forced(
  model: Seq2Seq, params, src: Array, tgt_in: Array, key: Array, forcing: Forcing = ALWAYS
) -> tuple[Array, Array]:
  """Scores one sentence pair position by position.

  At each step the reference token tgt_in[t] is fed with probability `forcing.ratio`
  (drawn per step from `key`), otherwise the model's own previous argmax; the first step
  always feeds tgt_in[0] (BOS). At ratio 1.0 (a Python float, static under jit) only the
  recurrence is scanned: the embedding lookup, the embedding's part of the first input
  projection and the output layers run outside the scan, on all positions at once.

  src: [src_len] int; tgt_in: [tgt_len] int (BOS y_1 ... y_n, padded with 0).
  Returns logits [tgt_len, tgt_vocab] and attention weights [tgt_len, src_len].
  """
  if src.ndim != 1 or tgt_in.ndim != 1:
    raise ValueError(f"teacher_forced takes one sentence pair, got {src.shape}, {tgt_in.shape}")
  enc_key, step_key, emb_key, out_key = jax.random.split(key, 4)
  start = model.apply(
    params, src, train=forcing.train, method=Seq2Seq.encode, rngs={"dropout": enc_key}
  )
  keys = _Keys(jax.random.split(step_key, tgt_in.shape[0]), emb_key, out_key)
  if forcing.ratio == 1.0:
    return _always_forced(model, params, start, tgt_in, keys, forcing.train)
  return _sometimes_forced(model, params, start, tgt_in, keys.steps, forcing)


def _always_forced(model, params, start, tgt_in, keys: _Keys, train: bool):
  """Every input is the reference, so nothing in the scan needs the previous logits.

  start: (memory, state) from `Seq2Seq.encode`. The embeddings, and their part of the
  first layer that reads the decoder input, are computed before the scan; the attentional
  and output layers run after it, each once on all positions.
  """
  memory, state = start
  embedded = model.apply(
    params, tgt_in, train=train, method=Seq2Seq.embed_target, rngs={"dropout": keys.embed}
  )
  projected = model.apply(params, embedded, method=Seq2Seq.project_targets)
  hoist = model.readout_outside_recurrence

  def step(params, memory, state, inputs):
    emb, proj, k = inputs
    state, out, weights = model.apply(
      params,
      memory,
      state,
      emb,
      train=train,
      readout=not hoist,
      projected=proj,
      method=Seq2Seq.decode_hidden,
      rngs={"dropout": k},
    )
    return state, (out, weights)

  xs = (embedded, projected, keys.steps)
  _, (outs, weights) = lax.scan(
    lambda state, x: step(params, memory, state, x), state, xs, unroll=model.config.scan_unroll
  )
  logits = model.apply(
    params, outs, train=train, readout=hoist, method=Seq2Seq.logits, rngs={"dropout": keys.output}
  )
  return logits, weights


def _sometimes_forced(model, params, start, tgt_in, step_keys, forcing: Forcing):
  """A coin per position decides between the reference and the previous argmax."""
  memory, state = start

  def body(carry, inputs):
    state, prev_pred = carry  # decoder state; the model's last argmax []
    reference, k = inputs
    force_key, dropout_key = jax.random.split(k)
    forced = jax.random.uniform(force_key) < forcing.ratio
    token = jnp.where(forced, reference, prev_pred)
    state, logits, weights = model.apply(
      params,
      memory,
      state,
      token,
      train=forcing.train,
      method=Seq2Seq.decode_step,
      rngs={"dropout": dropout_key},
    )
    return (state, jnp.argmax(logits).astype(tgt_in.dtype)), (logits, weights)

  _, (logits, weights) = lax.scan(
    body, (state, tgt_in[0]), (tgt_in, step_keys), unroll=model.config.scan_unroll
  )
  return logits, weights


class Decoded(NamedTuple):
  """One sentence decoded token by token (greedy or sampled)."""

  tokens: Array  # [max_len] int32, EOS included (when produced), then PAD
  attention: Array  # [max_len, src_len] weights of each output position, zero after EOS
  length: Array  # [] int32, tokens before EOS
  log_prob: Array  # [] float32, log P(Y | X) of the tokens, EOS included when produced


def forced_token(prefix: Array | None, t: Array) -> tuple[Array, Array]:
  """(whether position t is forced, the token forced there) for a target prefix.

  prefix: [prefix_len] int, the forced first output tokens padded with PAD, or None.
  """
  if prefix is None or prefix.shape[0] == 0:
    return jnp.bool_(False), jnp.int32(PAD)
  token = prefix[jnp.minimum(t, prefix.shape[0] - 1)].astype(jnp.int32)
  return (t < prefix.shape[0]) & (token != PAD), token


class Inputs(NamedTuple):
  """What a token-by-token search reads of one sentence (with a leading [batch] axis on
  each array, of a batch)."""

  src: Array  # [src_len] int (0 = PAD)
  key: Array | None = None  # the random key of the draws (sampling only)
  prefix: Array | None = None  # [prefix_len] int, target tokens forced first (PAD-padded)


class Sampling(NamedTuple):
  """What `sample` draws from (see `sampling_log_probs`); each may be traced."""

  temperature: float | Array = 1.0  # 0 takes the most likely token (greedy)
  top_k: int | Array = 0  # <= 0: all tokens
  top_p: float | Array = 1.0


Choose = Callable[[Array, Array], Array]  # (log_probs [tgt_vocab], key) -> the next token []


def _decode(model, params, inputs: Inputs, choose: Choose, *, max_len: int) -> Decoded:
  """The token-by-token loop behind `greedy` and `sample`.

  choose(log_probs [tgt_vocab], key) -> the next token []. The loop is a
  `lax.while_loop` over fixed-size buffers, so it compiles once per (src_len, max_len);
  under `vmap` it runs until every sentence of the batch has ended.
  """
  src, key, prefix = inputs
  key = jax.random.key(0) if key is None else key  # greedy search draws nothing
  models, params = ensemble.members(model, params)
  memories, states = ensemble.start(models, params, src)
  src_len = src.shape[0]
  tokens = jnp.full((max_len,), PAD, jnp.int32)
  attn = jnp.zeros((max_len, src_len), memories[0].values.dtype)

  def cond(loop):
    t, _, _, _, _, done = loop
    return (t < max_len) & ~done

  def body(loop):
    t, states, tokens, attn, log_prob, _ = loop
    prev = jnp.where(t == 0, BOS, tokens[jnp.maximum(t - 1, 0)])
    states, log_probs, weights = ensemble.step(models, params, memories, states, prev)
    forced, forced_tok = forced_token(prefix, t)
    token = jnp.where(forced, forced_tok, choose(log_probs, jax.random.fold_in(key, t)))
    token = token.astype(jnp.int32)
    return (
      t + 1,
      states,
      tokens.at[t].set(token),
      attn.at[t].set(weights),
      log_prob + log_probs[token],
      token == EOS,
    )

  loop = (jnp.int32(0), states, tokens, attn, jnp.float32(0.0), jnp.bool_(False))
  _, _, tokens, attn, log_prob, _ = lax.while_loop(cond, body, loop)
  is_eos = tokens == EOS
  length = jnp.where(is_eos.any(), jnp.argmax(is_eos), max_len).astype(jnp.int32)
  return Decoded(tokens, attn, length, log_prob)


def greedy(model, params, src: Array, *, max_len: int, prefix: Array | None = None) -> Decoded:
  """Greedy decoding of one sentence (the most likely token at each step) until EOS.

  model, params: a Seq2Seq and its params, or tuples of them (an ensemble, see
  `jaxseq/decoding/ensemble.py`). src: [src_len] int (0 = PAD). prefix: [prefix_len] int, target
  tokens forced first (padded with PAD), or None.
  """
  choose = lambda log_probs, key: jnp.argmax(log_probs)
  return _decode(model, params, Inputs(src, prefix=prefix), choose, max_len=max_len)


def sampling_log_probs(log_probs: Array, temperature: Array, top_k: Array, top_p: Array) -> Array:
  """The distribution that `sample` draws from, as log-probabilities [tgt_vocab].

  The model's log-probabilities are divided by the temperature and renormalised; then
  only the top_k most likely tokens (top_k <= 0: all) and, of those, the smallest
  most-likely-first set whose probability reaches top_p (nucleus sampling) keep their
  probability; the rest get -inf. temperature must be > 0 (0 is greedy, see `sample`).
  """
  tempered = jax.nn.log_softmax(log_probs / temperature)
  ranked = jnp.sort(tempered)[::-1]  # --> [tgt_vocab], most likely first
  rank = jnp.arange(ranked.shape[0])
  probs = jnp.exp(ranked)
  mass_before = jnp.cumsum(probs) - probs  # probability of the more likely tokens
  keep = ((top_k <= 0) | (rank < top_k)) & (mass_before < top_p)  # keeps rank 0 always
  threshold = jnp.min(jnp.where(keep, ranked, jnp.inf))
  return jax.nn.log_softmax(jnp.where(tempered >= threshold, tempered, -jnp.inf))


def sample(model, params, inputs: Inputs, sampling: Sampling, *, max_len: int) -> Decoded:
  """One output of one sentence drawn token by token from the model, until EOS.

  inputs: the source, the key of the draws and the prefix (see `Inputs`). sampling: the
  distribution (see `sampling_log_probs`); temperature 0 takes the most likely token,
  which is greedy decoding. The step keys are fold_in(key, position), so a key gives the
  same output whatever the batch. The score (`log_prob`) is the model's own, without
  temperature or truncation.
  """
  temperature, top_k, top_p = sampling

  def choose(log_probs, step_key):
    safe = jnp.where(temperature > 0, temperature, 1.0)
    drawn = jax.random.categorical(step_key, sampling_log_probs(log_probs, safe, top_k, top_p))
    return jnp.where(temperature > 0, drawn, jnp.argmax(log_probs))

  return _decode(model, params, inputs, choose, max_len=max_len)


# The one place where sentences become batches (callers jit them).
def batch_teacher_forced(model, params, src, tgt_in, keys, forcing: Forcing = ALWAYS):
  """src [batch, src_len], tgt_in [batch, tgt_len], keys [batch] -> per-example outputs."""
  fn = functools.partial(teacher_forced, model, params, forcing=forcing)
  return jax.vmap(fn)(src, tgt_in, keys)


def batch_greedy(model, params, src, *, max_len, prefix=None) -> Decoded:
  """src [batch, src_len] (prefix [batch, prefix_len] or None) -> a Decoded with a leading
  [batch] axis on every field."""
  fn = lambda s, p: greedy(model, params, s, max_len=max_len, prefix=p)
  return jax.vmap(fn)(src, prefix)


def batch_sample(model, params, inputs: Inputs, sampling: Sampling, *, max_len) -> Decoded:
  """inputs with a leading [batch] axis (src [batch, src_len], key [batch], prefix [batch,
  prefix_len] or None) -> a Decoded with a leading [batch] axis; the sampling settings are
  shared by the batch."""
  fn = lambda one: sample(model, params, one, sampling, max_len=max_len)
  return jax.vmap(fn)(inputs)
