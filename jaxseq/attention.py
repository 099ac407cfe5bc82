"""Attention over the encoder states of one sentence.

Every attention here has two parts:
  * `keys(values)`, run once per sentence before the decoder scan (the projection of
    the encoder states that does not depend on the decoder);
  * `__call__(query, keys, values, mask)`, run at every decoder step, returning the
    context vector and the attention weights, a distribution over the real source
    positions with exactly zero weight on padding.

Shapes are for one example: values [src_len, value_size], mask [src_len] bool.

References:
  Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
    Translate", Appendix A.1.2 (additive score v^T tanh(W s + U h)).
  Luong et al. 2015, "Effective Approaches to Attention-based Neural Machine
    Translation", Eq. 8 (dot, general, concat scores).
  The PyTorch tutorial "Translation with a Sequence to Sequence Network and Attention"
    (AttnDecoderRNN: weights from a linear layer over [embedded; hidden], one output
    per position up to a fixed max_length).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

ATTENTIONS = ("none", "tutorial", "bahdanau", "luong_dot", "luong_general", "luong_concat")


def masked_softmax(scores: Array, mask: Array) -> Array:
  """softmax over the positions where mask is True; exactly 0 elsewhere.

  scores: [src_len] float; mask: [src_len] bool -> [src_len].
  """
  if scores.shape != mask.shape:
    raise ValueError(f"scores {scores.shape} and mask {mask.shape} differ in shape")
  scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  return jax.nn.softmax(scores) * mask


def _check(values: Array, mask: Array):
  if values.ndim != 2 or mask.shape != values.shape[:1]:
    raise ValueError(
        f"attention is written for one example: values [src_len, size] and mask "
        f"[src_len], got {values.shape} and {mask.shape}")


def _attend(scores: Array, values: Array, mask: Array) -> tuple[Array, Array]:
  weights = masked_softmax(scores, mask)
  return weights @ values, weights  # context [value_size], weights [src_len]


class AdditiveAttention(nn.Module):
  """score(s, h_j) = v^T tanh(W s + U h_j): Bahdanau A.1.2, Luong's `concat`."""

  size: int

  def setup(self):
    self.key_proj = nn.Dense(self.size, use_bias=False, name="key")
    self.query_proj = nn.Dense(self.size, name="query")
    self.energy = nn.Dense(1, use_bias=False, name="energy")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # U h_j for every j: [src_len, size]

  def __call__(self, query, keys, values, mask):
    _check(values, mask)
    scores = self.energy(jnp.tanh(keys + self.query_proj(query)))[:, 0]
    return _attend(scores, values, mask)


class DotAttention(nn.Module):
  """score(h_t, h_s) = h_t . h_s (Luong `dot`); query and values share a size."""

  def keys(self, values: Array) -> Array:
    return values

  def __call__(self, query, keys, values, mask):
    _check(values, mask)
    if query.shape[-1] != keys.shape[-1]:
      raise ValueError(f"dot attention needs equal sizes: query {query.shape}, keys {keys.shape}")
    return _attend(keys @ query, values, mask)


class GeneralAttention(nn.Module):
  """score(h_t, h_s) = h_t^T W_a h_s (Luong `general`); W_a h_s is precomputed."""

  query_size: int

  def setup(self):
    self.key_proj = nn.Dense(self.query_size, use_bias=False, name="key")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # [src_len, query_size]

  def __call__(self, query, keys, values, mask):
    _check(values, mask)
    return _attend(keys @ query, values, mask)


class TutorialAttention(nn.Module):
  """The tutorial's location-based weights: softmax(Linear([embedded; hidden])).

  One output unit per source position up to `max_length`; the first src_len are
  used and padding is masked, so sentences longer than max_length cannot be
  attended (a trace-time error says so).
  """

  max_length: int

  def setup(self):
    self.position_scores = nn.Dense(self.max_length, name="position_scores")

  def keys(self, values: Array) -> Array:
    return values

  def __call__(self, query, keys, values, mask):
    _check(values, mask)
    src_len = values.shape[0]
    if src_len > self.max_length:
      raise ValueError(
          f"tutorial attention covers at most model.max_length={self.max_length} source "
          f"positions, got a source padded to {src_len}")
    scores = self.position_scores(query)[:src_len]
    return _attend(scores, values, mask)


def make_attention(name: str, *, attention_size: int, hidden_size: int, max_length: int):
  """The attention module for config.model.attention (None for 'none')."""
  table = {
      "none": lambda: None,
      "tutorial": lambda: TutorialAttention(max_length, name="attention"),
      "bahdanau": lambda: AdditiveAttention(attention_size, name="attention"),
      "luong_concat": lambda: AdditiveAttention(attention_size, name="attention"),
      "luong_dot": lambda: DotAttention(name="attention"),
      "luong_general": lambda: GeneralAttention(hidden_size, name="attention"),
  }
  if name not in table:
    raise ValueError(f"unknown attention {name!r}; allowed: {', '.join(ATTENTIONS)}")
  return table[name]()
