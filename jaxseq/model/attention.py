"""Attention over the encoder states of one sentence, and how the decoder wires each one.

Every attention here has two parts:
  * `keys(values)`, run once per sentence before the decoder scan (the projection of
    the encoder states that does not depend on the decoder);
  * `__call__(query, memory)`, run at every decoder step, returning the context vector
    and the attention weights, a distribution over the real source positions with
    exactly zero weight on padding.
An attention with a state of its own (the coverage vector of `coverage`, the step counter
of `luong_local_m`) has a third part, `init_state(memory)`, its state before the first
step (any pytree), and its `__call__(query, memory, state)` returns the new state as
well: (context, weights, state). The decoder carries that state in
`model.DecoderState.attention` through every search (see `is_stateful`, `call`).

`ATTENTIONS` is the one table the rest of jaxseq reads: per name, the module to build
and its `Wiring`, the facts the decoder needs (who asks, where the context goes). The
decoder (`model.Seq2Seq.decode_hidden`) follows the wiring and never compares names, so
a new attention is one class and one row here (docs/extending.md walks through one).
The README's table of attentions is made from the rows (`python -m jaxseq.model.attention
--readme=README.md` rewrites it).

Shapes are for one example: values [src_len, value_size], mask [src_len] bool.

References:
  Cho et al. 2014 (the fixed context C: the encoder's final state at every step).
  Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
    Translate", Appendix A.1.2 (additive score v^T tanh(W s + U h)).
  Luong et al. 2015, "Effective Approaches to Attention-based Neural Machine
    Translation", Eq. 8 (dot, general, concat scores) and Sec. 3.2 (local attention: a
    window [p_t - D, p_t + D], at p_t = t (local-m) or at a predicted p_t, times a
    Gaussian (local-p), Eq. 9-10).
  Tu et al. 2016, "Modeling Coverage for Neural Machine Translation" (a coverage vector
    per source position in the attention score); See et al. 2017, "Get To The Point:
    Summarization with Pointer-Generator Networks", Sec. 2.2 (coverage as the sum of the
    past weights, Eq. 10-11, and the coverage loss, Eq. 12).
  Vaswani et al. 2017, "Attention Is All You Need", Eq. 1 (the dot score scaled by
    1/sqrt(d), so that its variance does not grow with the size).
  Sennrich et al. 2017, "Nematus: a Toolkit for Neural Machine Translation", Sec. 2.3
    (the conditional GRU: a first GRU from y_{t-1}, additive attention asked by its
    state, a second GRU that reads the context; the decoder of nmtpytorch's baselines).
  The PyTorch tutorial "Translation with a Sequence to Sequence Network and Attention"
    (AttnDecoderRNN: weights from a linear layer over [embedded; hidden], one output
    per position up to a fixed max_length, then a combine layer and ReLU).
"""

import argparse
import dataclasses
import itertools
import sys
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseq.model import cells

Array = jax.Array


class Memory(NamedTuple):
  """What the decoder reads from the encoder; constant over one sentence."""

  values: Array  # [src_len, hidden] encoder states attended over
  keys: Array  # [src_len, key_size] their projection for the attention score
  mask: Array  # [src_len] bool, True on real tokens
  context: Array  # [hidden] the fixed context C, the encoder's final state


def masked_softmax(scores: Array, mask: Array) -> Array:
  """softmax over the positions where mask is True; exactly 0 elsewhere.

  scores: [src_len] float; mask: [src_len] bool -> [src_len].
  """
  if scores.shape != mask.shape:
    raise ValueError(f"scores {scores.shape} and mask {mask.shape} differ in shape")
  scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  return jax.nn.softmax(scores) * mask


def check_memory(memory: Memory):
  """ValueError unless memory is one example's: values [src_len, size], mask [src_len]."""
  values, mask = memory.values, memory.mask
  if values.ndim != 2 or mask.shape != values.shape[:1]:
    raise ValueError(
      f"attention is written for one example: values [src_len, size] and mask "
      f"[src_len], got {values.shape} and {mask.shape}"
    )


def attend(scores: Array, memory: Memory) -> tuple[Array, Array]:
  """scores [src_len] -> (context [value_size], weights [src_len]): the masked softmax of
  the scores, then the weighted sum of the values."""
  weights = masked_softmax(scores, memory.mask)
  return weights @ memory.values, weights  # context [value_size], weights [src_len]


class FixedContext(nn.Module):
  """No attention: the context is C, the encoder's final state, at every step."""

  def keys(self, values: Array) -> Array:
    return values

  def __call__(self, query, memory: Memory):
    check_memory(memory)
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
    check_memory(memory)
    scores = self.energy(jnp.tanh(memory.keys + self.query_proj(query)))[:, 0]
    return attend(scores, memory)


class DotAttention(nn.Module):
  """score(h_t, h_s) = h_t . h_s (Luong `dot`), optionally / sqrt(size) (`scaled`)."""

  scaled: bool = False

  def keys(self, values: Array) -> Array:
    return values

  def __call__(self, query, memory: Memory):
    check_memory(memory)
    if query.shape[-1] != memory.keys.shape[-1]:
      raise ValueError(
        f"dot attention needs equal sizes: query {query.shape}, keys {memory.keys.shape}"
      )
    scores = memory.keys @ query
    if self.scaled:
      scores = scores / jnp.sqrt(jnp.asarray(query.shape[-1], scores.dtype))
    return attend(scores, memory)


class GeneralAttention(nn.Module):
  """score(h_t, h_s) = h_t^T W_a h_s (Luong `general`); W_a h_s is precomputed."""

  query_size: int

  def setup(self):
    self.key_proj = nn.Dense(self.query_size, use_bias=False, name="key")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # [src_len, query_size]

  def __call__(self, query, memory: Memory):
    check_memory(memory)
    return attend(memory.keys @ query, memory)


class PositionAttention(nn.Module):
  """The tutorial's location-based weights: softmax(Linear([embedded; hidden])).

  One output unit per source position up to `max_length`; the first src_len are
  used and padding is masked, so sentences longer than max_length cannot be
  attended (a trace-time error says so).

  Its query starts with the step's input x_t. `input_scores(x)` is the part of the scores
  that reads x (a loop that knows every x_t in advance makes it once); called with it as
  `input_part`, the query is then only what follows x in it.
  """

  max_length: int

  def setup(self):
    self.position_scores = nn.Dense(self.max_length, name="position_scores")

  def keys(self, values: Array) -> Array:
    return values

  def input_scores(self, x: Array) -> Array:
    """x [..., n], the first n entries of queries -> their part of the scores, bias included."""
    return cells.leading_rows(self.position_scores, x)

  def __call__(self, query, memory: Memory, input_part: Array | None = None):
    check_memory(memory)
    src_len = memory.values.shape[0]
    if src_len > self.max_length:
      raise ValueError(
        f"tutorial attention covers at most model.max_length={self.max_length} source "
        f"positions, got a source padded to {src_len}"
      )
    if input_part is None:
      scores = self.position_scores(query)
    else:
      scores = input_part + cells.trailing_rows(self.position_scores, query)
    return attend(scores[:src_len], memory)


class CoverageAttention(nn.Module):
  """score(s, h_i) = v^T tanh(W s + U h_i + w_c c_i + b): the additive score with a
  coverage term (Tu et al. 2016, in the form of See et al. 2017, Eq. 10-11).

  The state is the coverage vector c [src_len]: the sum of the weights each source
  position has had at the earlier steps, zeros before the first. Reading it, the score
  can learn to turn from what has been attended to already. Padding gets no weight, so
  its coverage stays zero. `has_coverage` says that the state is such a sum, which the
  coverage loss (config.coverage_loss_weight) compares each step's weights with.
  """

  size: int
  state_is_coverage: ClassVar[bool] = True  # see has_coverage

  def setup(self):
    self.key_proj = nn.Dense(self.size, use_bias=False, name="key")
    self.query_proj = nn.Dense(self.size, name="query")  # W s + b
    self.coverage_proj = nn.Dense(self.size, use_bias=False, name="coverage")  # w_c
    self.energy = nn.Dense(1, use_bias=False, name="energy")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # U h_i for every i: [src_len, size]

  def init_state(self, memory: Memory) -> Array:
    return jnp.zeros(memory.mask.shape, jnp.float32)  # no weight given yet: [src_len]

  def __call__(self, query, memory: Memory, coverage: Array):
    check_memory(memory)
    features = memory.keys + self.query_proj(query) + self.coverage_proj(coverage[:, None])
    context, weights = attend(self.energy(jnp.tanh(features))[:, 0], memory)
    return context, weights, coverage + weights.astype(coverage.dtype)


def in_window(mask: Array, centre: Array, width: int) -> Array:
  """mask [src_len] bool, centre [] (a position, maybe fractional), width D -> [src_len]
  bool: the real positions s (counted from 0) with |s - centre| <= D."""
  positions = jnp.arange(mask.shape[0])
  return mask & (jnp.abs(positions - centre) <= width)


def real_length(mask: Array) -> Array:
  """S, the number of real source positions: [] int32."""
  return jnp.sum(mask, dtype=jnp.int32)


class LocalMonotonicAttention(nn.Module):
  """Luong's local-m (Sec. 3.2): the `general` score h_t^T W_a h_s over the window
  [p_t - D, p_t + D] around p_t = t, the decoder step (0 at the first output position).

  The state is that step counter, [] int32. The weights are the softmax of the scores
  over the real positions inside the window, exactly zero outside it and on padding.
  Past the end of a shorter source, p_t is held at its last real position S - 1, so the
  window always holds real positions (the last min(D + 1, S) of the sentence) and the
  weights sum to one; a source with no real position gets all-zero weights, never NaN.
  """

  query_size: int
  window: int  # D

  def setup(self):
    self.key_proj = nn.Dense(self.query_size, use_bias=False, name="key")

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # W_a h_s: [src_len, query_size]

  def init_state(self, memory: Memory) -> Array:
    return jnp.zeros((), jnp.int32)  # t of the first step

  def __call__(self, query, memory: Memory, step: Array):
    check_memory(memory)
    centre = jnp.minimum(step, real_length(memory.mask) - 1)
    window = in_window(memory.mask, centre, self.window)
    context, weights = attend(memory.keys @ query, memory._replace(mask=window))
    return context, weights, step + 1


class LocalPredictiveAttention(nn.Module):
  """Luong's local-p (Sec. 3.2, Eq. 9-10): the `general` score h_t^T W_a h_s over the
  window [p_t - D, p_t + D] around a predicted position, times a Gaussian centred there.

  p_t = S * sigmoid(v_p^T tanh(W_p h_t)), S the real source length, positions counted
  from 0. The weights are the softmax of the scores over the real positions inside the
  window (zero outside it and on padding) times exp(-(s - p_t)^2 / (2 sigma^2)), sigma =
  D / 2, and then renormalised over the window so that they sum to one (the paper leaves
  the product as it is). That renormalised product is one softmax of score - (s - p_t)^2
  / (2 sigma^2) over the window, computed so, which cannot underflow to an all-zero row.
  The gradient reaches v_p and W_p through the Gaussian; the window's edges are a hard
  cut. p_t lies in (0, S), so a real position (floor(p_t), or S - 1) lies within 1 <= D
  of it and the window is never empty; a source with no real position gets all-zero
  weights, never NaN.
  """

  query_size: int
  size: int  # of W_p's output
  window: int  # D

  def setup(self):
    self.key_proj = nn.Dense(self.query_size, use_bias=False, name="key")
    self.position_hidden = nn.Dense(self.size, use_bias=False, name="position_hidden")  # W_p
    self.position_out = nn.Dense(1, use_bias=False, name="position_out")  # v_p

  def keys(self, values: Array) -> Array:
    return self.key_proj(values)  # W_a h_s: [src_len, query_size]

  def position(self, query: Array, mask: Array) -> Array:
    """p_t = S * sigmoid(v_p^T tanh(W_p h_t)): [] float, in (0, S)."""
    gate = jax.nn.sigmoid(self.position_out(jnp.tanh(self.position_hidden(query)))[0])
    return real_length(mask).astype(gate.dtype) * gate

  def __call__(self, query, memory: Memory):
    check_memory(memory)
    centre = self.position(query, memory.mask)
    scores = memory.keys @ query
    positions = jnp.arange(scores.shape[0], dtype=centre.dtype)
    sigma = self.window / 2
    scores = scores - (positions - centre) ** 2 / (2 * sigma**2)  # log of the Gaussian
    window = in_window(memory.mask, centre, self.window)
    return attend(scores, memory._replace(mask=window))


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
      raise ValueError(
        "second_cell reads the context asked by the first cell's state: it needs query_after_cell"
      )
    if self.query_after_cell and (self.query_with_input or self.feeds_cell):
      raise ValueError(
        "a query after the cell has neither x_t in it nor a context for the "
        "cell: query_with_input and feeds_cell must be False"
      )
    if self.combine and not self.feeds_cell:
      raise ValueError("combine mixes the context into the cell input: it needs feeds_cell")


class Entry(NamedTuple):
  """One attention: its module (built from the model's sizes), its wiring, and the two
  cells of its line in the README's table."""

  build: Callable[..., nn.Module]  # (config.model, a ModelConfig) -> module; reads its sizes
  wiring: Wiring
  reference: str  # the paper or source
  description: str  # what the decoder sees, in a few words


BEFORE_CELL = Wiring()  # h_{t-1} asks; the context joins the cell input
AFTER_CELL = Wiring(query_after_cell=True, feeds_cell=False)  # h_t asks; the context goes out
_LUONG_SEEN = "score on the new state, after the cell"  # three rows, one README line

ATTENTIONS: dict[str, Entry] = {
  "none": Entry(
    lambda m: FixedContext(),
    BEFORE_CELL,
    "Cho et al. 2014",
    "one fixed context C, the final encoder state, at every step; C feeds the cell",
  ),
  "tutorial": Entry(
    lambda m: PositionAttention(m.max_length),
    Wiring(query_with_input=True, combine=True),
    "the PyTorch tutorial's AttnDecoderRNN",
    "softmax(Linear([embedded; hidden])) over fixed positions, then combine + ReLU",
  ),
  "bahdanau": Entry(
    lambda m: AdditiveAttention(m.attention_size),
    BEFORE_CELL,
    "Bahdanau et al. 2015, A.1.2",
    "additive score on the previous state; the context feeds the cell",
  ),
  "coverage": Entry(
    lambda m: CoverageAttention(m.attention_size),
    BEFORE_CELL,
    "Tu et al. 2016; See et al. 2017, Sec. 2.2",
    "additive score on the previous state plus a term of each position's coverage "
    "(the sum of its past weights); the context feeds the cell",
  ),
  "luong_dot": Entry(lambda m: DotAttention(), AFTER_CELL, "Luong et al. 2015, Eq. 8", _LUONG_SEEN),
  "luong_general": Entry(
    lambda m: GeneralAttention(m.hidden_size), AFTER_CELL, "Luong et al. 2015, Eq. 8", _LUONG_SEEN
  ),
  "luong_concat": Entry(
    lambda m: AdditiveAttention(m.attention_size),
    AFTER_CELL,
    "Luong et al. 2015, Eq. 8",
    _LUONG_SEEN,
  ),
  "luong_local_m": Entry(
    lambda m: LocalMonotonicAttention(m.hidden_size, m.local_window),
    AFTER_CELL,
    "Luong et al. 2015, Sec. 3.2",
    "general score on the new state over the window [t - D, t + D] of the step t "
    "(D: model.local_window)",
  ),
  "luong_local_p": Entry(
    lambda m: LocalPredictiveAttention(m.hidden_size, m.attention_size, m.local_window),
    AFTER_CELL,
    "Luong et al. 2015, Sec. 3.2, Eq. 9-10",
    "general score on the new state over the window [p_t - D, p_t + D] of a predicted "
    "position p_t, times a Gaussian around it, renormalised",
  ),
  "scaled_dot": Entry(
    lambda m: DotAttention(scaled=True),
    AFTER_CELL,
    "Vaswani et al. 2017, Eq. 1",
    "Luong's dot score divided by sqrt(hidden)",
  ),
  "conditional": Entry(
    lambda m: AdditiveAttention(m.attention_size),
    Wiring(query_after_cell=True, feeds_cell=False, second_cell=True),
    "Sennrich et al. 2017 (Nematus), Sec. 2.3",
    "additive score on the first cell's new state; a second cell reads "
    "the context and makes the step's state (the conditional GRU)",
  ),
}


def entry(name: str) -> Entry:
  """The table row of config.model.attention; ValueError naming the allowed ones."""
  if name not in ATTENTIONS:
    raise ValueError(f"unknown attention {name!r}; allowed: {', '.join(ATTENTIONS)}")
  return ATTENTIONS[name]


def is_stateful(module: nn.Module) -> bool:
  """Whether an attention keeps a state of its own: it then has `init_state(memory)`, and
  its `__call__(query, memory, state)` returns (context, weights, new state)."""
  return hasattr(module, "init_state")


def has_coverage(module: nn.Module) -> bool:
  """Whether an attention's state is its coverage vector, the sum of its past weights per
  source position (a class that says `state_is_coverage = True`): the c_t that the coverage
  loss (config.coverage_loss_weight, See et al. 2017, Eq. 12) compares each step's weights
  with. That loss is computed from the weights the decoder returns, which make the same sum."""
  return is_stateful(module) and getattr(module, "state_is_coverage", False)


def coverage_rows(model_config) -> list[str]:
  """The names of the rows whose attention `has_coverage`, built from config.model's sizes."""
  return [name for name, row in ATTENTIONS.items() if has_coverage(row.build(model_config))]


def initial_state(module: nn.Module, memory: Memory) -> Any:
  """The attention's state before the first decoder step: `init_state(memory)`, or () for
  an attention without one (so a stateless decoder carries nothing more)."""
  return module.init_state(memory) if is_stateful(module) else ()


def call(
  module: nn.Module, query: Array, memory: Memory, state: Any, **input_part
) -> tuple[Array, Array, Any]:
  """One decoder step of any attention: (context, weights, its new state).

  input_part: `input_part=` the module's `input_scores` of the step input, for a query
  that starts with it (query_with_input), given when it was made before the loop.

  A stateless attention is called as `module(query, memory)` and its state () passes
  through; a stateful one gets its state and must return a new one of the same
  structure, shapes and dtypes (it is a loop carry), else ValueError.
  """
  if not is_stateful(module):
    return (*module(query, memory, **input_part), state)
  context, weights, new_state = module(query, memory, state, **input_part)
  if _signature(new_state) != _signature(state):
    raise ValueError(
      f"{type(module).__name__} returned a state that is not shaped like its "
      f"init_state: {_signature(new_state)} after {_signature(state)}"
    )
  return context, weights, new_state


def _signature(tree: Any) -> tuple:
  leaves, structure = jax.tree.flatten(tree)
  return structure, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]


TABLE_BEGIN = "<!-- attention-table:begin -->"
TABLE_END = "<!-- attention-table:end -->"


def table_markdown() -> str:
  """The README's table of attentions, made from the rows of `ATTENTIONS`: name, what the
  decoder sees, reference. Neighbouring rows with the same two cells share a line."""
  lines = ["| `config.model.attention` | what the decoder sees | reference |", "|---|---|---|"]
  same_cells = lambda item: (item[1].description, item[1].reference)
  for (description, reference), rows in itertools.groupby(ATTENTIONS.items(), same_cells):
    names = ", ".join(f"`{name}`" for name, _ in rows)
    lines.append(f"| {names} | {description} | {reference} |")
  return "\n".join(lines) + "\n"


def with_table(text: str) -> str:
  """text (the README) with `table_markdown()` between its two table markers; ValueError
  when they are missing or out of order."""
  begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
  if begin < 0 or end < begin:
    raise ValueError(f"the text needs the lines {TABLE_BEGIN} and then {TABLE_END}")
  head = text[: begin + len(TABLE_BEGIN)]
  return f"{head}\n{table_markdown()}{text[end:]}"


def main(argv: list[str]) -> int:
  """python -m jaxseq.model.attention [--readme=README.md]: prints the table, or rewrites it in
  the README between its markers."""
  parser = argparse.ArgumentParser(
    prog="python -m jaxseq.model.attention", description="The README table of attentions."
  )
  parser.add_argument("--readme", default="", help="rewrite the table in this file")
  args = parser.parse_args(argv)
  if not args.readme:
    print(table_markdown(), end="")
    return 0
  with open(args.readme, encoding="utf-8") as f:
    text = f.read()
  with open(args.readme, "w", encoding="utf-8") as f:
    f.write(with_table(text))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
