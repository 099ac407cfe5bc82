"""Attention over the encoder states of one sentence, and how the decoder wires each one.

Every attention here has two parts:
  * `keys(values)`, run once per sentence before the decoder scan (the projection of
    the encoder states that does not depend on the decoder);
  * `__call__(query, memory)`, run at every decoder step, returning the context vector
    and the attention weights, a distribution over the real source positions with
    exactly zero weight on padding.

`ATTENTIONS` is the one table the rest of jaxseq reads: per name, the module to build
and its `Wiring`, the facts the decoder needs (who asks, where the context goes). The
decoder (`model.Seq2Seq.decode_hidden`) follows the wiring and never compares names, so
a new attention is one class and one row here (docs/extending.md walks through one).

Shapes are for one example: values [src_len, value_size], mask [src_len] bool.

References:
  Cho et al. 2014 (the fixed context C: the encoder's final state at every step).
  Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
    Translate", Appendix A.1.2 (additive score v^T tanh(W s + U h)).
  Luong et al. 2015, "Effective Approaches to Attention-based Neural Machine
    Translation", Eq. 8 (dot, general, concat scores).
  Vaswani et al. 2017, "Attention Is All You Need", Eq. 1 (the dot score scaled by
    1/sqrt(d), so that its variance does not grow with the size).
  Sennrich et al. 2017, "Nematus: a Toolkit for Neural Machine Translation", Sec. 2.3
    (the conditional GRU: a first GRU from y_{t-1}, additive attention asked by its
    state, a second GRU that reads the context; the decoder of nmtpytorch's baselines).
  The PyTorch tutorial "Translation with a Sequence to Sequence Network and Attention"
    (AttnDecoderRNN: weights from a linear layer over [embedded; hidden], one output
    per position up to a fixed max_length, then a combine layer and ReLU).
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class Memory(NamedTuple):
  """What the decoder reads from the encoder; constant over one sentence."""
  values: Array   # [src_len, hidden] encoder states attended over
  keys: Array     # [src_len, key_size] their projection for the attention score
  mask: Array     # [src_len] bool, True on real tokens
  context: Array  # [hidden] the fixed context C, the encoder's final state


def masked_softmax(scores: Array, mask: Array) -> Array:
  """softmax over the positions where mask is True; exactly 0 elsewhere.

  scores: [src_len] float; mask: [src_len] bool -> [src_len].
  """
  if scores.shape != mask.shape:
    raise ValueError(f"scores {scores.shape} and mask {mask.shape} differ in shape")
  scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  return jax.nn.softmax(scores) * mask


def _check(memory: Memory):
  values, mask = memory.values, memory.mask
  if values.ndim != 2 or mask.shape != values.shape[:1]:
    raise ValueError(
        f"attention is written for one example: values [src_len, size] and mask "
        f"[src_len], got {values.shape} and {mask.shape}")


def _attend(scores: Array, memory: Memory) -> tuple[Array, Array]:
  weights = masked_softmax(scores, memory.mask)
  return weights @ memory.values, weights  # context [value_size], weights [src_len]


class FixedContext(nn.Module):
  """No attention: the context is C, the encoder's final state, at every step."""

  def keys(self, values: Array) -> Array:
    return values

  def __call__(self, query, memory: Memory):
    _check(memory)
    return memory.context, jnp.zeros(memory.mask.shape, memory.values.dtype)


class AdditiveAttention(nn.Module):
  """score(s, h_j) = v^T tanh(W s + U h_j): Bahdanau A.1.2, Luong's `concat`."""

  size: int

  def setup(self):
    self.key_proj = nn.Dense(self.size, use_bias=False, name="key")
    self.query_proj = nn.Dense(self.size, name="query")
    self.energy = nn.Dense(1, use_bias=False, name="energy")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # U h_j for every j: [src_len, size]

  def __call__(self, query, memory: Memory):
    _check(memory)
    scores = self.energy(jnp.tanh(memory.keys + self.query_proj(query)))[:, 0]
    return _attend(scores, memory)


class DotAttention(nn.Module):
  """score(h_t, h_s) = h_t . h_s (Luong `dot`), optionally / sqrt(size) (`scaled`)."""

  scaled: bool = False

  def keys(self, values: Array) -> Array:
    return values

  def __call__(self, query, memory: Memory):
    _check(memory)
    if query.shape[-1] != memory.keys.shape[-1]:
      raise ValueError(f"dot attention needs equal sizes: query {query.shape}, "
                       f"keys {memory.keys.shape}")
    scores = memory.keys @ query
    if self.scaled:
      scores = scores / jnp.sqrt(jnp.asarray(query.shape[-1], scores.dtype))
    return _attend(scores, memory)


class GeneralAttention(nn.Module):
  """score(h_t, h_s) = h_t^T W_a h_s (Luong `general`); W_a h_s is precomputed."""

  query_size: int

  def setup(self):
    self.key_proj = nn.Dense(self.query_size, use_bias=False, name="key")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # [src_len, query_size]

  def __call__(self, query, memory: Memory):
    _check(memory)
    return _attend(memory.keys @ query, memory)


class PositionAttention(nn.Module):
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

  def __call__(self, query, memory: Memory):
    _check(memory)
    src_len = memory.values.shape[0]
    if src_len > self.max_length:
      raise ValueError(
          f"tutorial attention covers at most model.max_length={self.max_length} source "
          f"positions, got a source padded to {src_len}")
    return _attend(self.position_scores(query)[:src_len], memory)


@dataclasses.dataclass(frozen=True)
class Wiring:
  """How the decoder uses an attention at one step (x_t: the step's input vector).

  query_after_cell: the new state h_t asks, after the cell (Luong); else the previous
    state h_{t-1} asks, before the cell (Bahdanau).
  query_with_input: the query is [x_t; h_{t-1}] rather than the state alone (the
    tutorial); only for a query before the cell.
  feeds_cell: the context joins the cell input, [x_t; c_t]; only for a query before
    the cell, whose context exists by then.
  combine: the cell reads relu(W [x_t; c_t]) instead of [x_t; c_t] (the tutorial).
  second_cell: the state the cell made, h'_t, asks, and a second cell of the top layer
    then reads the context: h_t = cell2(c_t, h'_t) is the step's state and output (the
    conditional GRU); only for a query after the cell.
  """
  query_after_cell: bool = False
  query_with_input: bool = False
  feeds_cell: bool = True
  combine: bool = False
  second_cell: bool = False

  @property
  def context_in_state(self) -> bool:
    """Whether c_t reaches the decoder state (so a readout need not read it)."""
    return self.feeds_cell or self.second_cell

  def __post_init__(self):
    if self.second_cell and not self.query_after_cell:
      raise ValueError("second_cell reads the context asked by the first cell's state: it "
                       "needs query_after_cell")
    if self.query_after_cell and (self.query_with_input or self.feeds_cell):
      raise ValueError("a query after the cell has neither x_t in it nor a context for the "
                       "cell: query_with_input and feeds_cell must be False")
    if self.combine and not self.feeds_cell:
      raise ValueError("combine mixes the context into the cell input: it needs feeds_cell")


class Entry(NamedTuple):
  """One attention: its module (built from the model's sizes) and its wiring."""
  build: Callable[..., nn.Module]  # (model) -> module; reads model.attention_size etc.
  wiring: Wiring
  reference: str


BEFORE_CELL = Wiring()  # h_{t-1} asks; the context joins the cell input
AFTER_CELL = Wiring(query_after_cell=True, feeds_cell=False)  # h_t asks; the context goes out

ATTENTIONS: dict[str, Entry] = {
    "none": Entry(lambda m: FixedContext(), BEFORE_CELL, "Cho et al. 2014"),
    "tutorial": Entry(lambda m: PositionAttention(m.max_length),
                      Wiring(query_with_input=True, combine=True),
                      "the PyTorch tutorial's AttnDecoderRNN"),
    "bahdanau": Entry(lambda m: AdditiveAttention(m.attention_size), BEFORE_CELL,
                      "Bahdanau et al. 2015, A.1.2"),
    "luong_dot": Entry(lambda m: DotAttention(), AFTER_CELL, "Luong et al. 2015, Eq. 8"),
    "luong_general": Entry(lambda m: GeneralAttention(m.hidden_size), AFTER_CELL,
                           "Luong et al. 2015, Eq. 8"),
    "luong_concat": Entry(lambda m: AdditiveAttention(m.attention_size), AFTER_CELL,
                          "Luong et al. 2015, Eq. 8"),
    "scaled_dot": Entry(lambda m: DotAttention(scaled=True), AFTER_CELL,
                        "Vaswani et al. 2017, Eq. 1"),
    "conditional": Entry(lambda m: AdditiveAttention(m.attention_size),
                         Wiring(query_after_cell=True, feeds_cell=False, second_cell=True),
                         "Sennrich et al. 2017 (Nematus), Sec. 2.3: the conditional GRU"),
}


def entry(name: str) -> Entry:
  """The table row of config.model.attention; ValueError naming the allowed ones."""
  if name not in ATTENTIONS:
    raise ValueError(f"unknown attention {name!r}; allowed: {', '.join(ATTENTIONS)}")
  return ATTENTIONS[name]
