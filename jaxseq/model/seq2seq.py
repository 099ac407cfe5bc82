"""The encoder and the attention decoder, written for one sentence.

Nothing here has a batch axis: `encode` takes src [src_len] and `decode_step` one
target token. Batching is `jax.vmap` over these (see `jaxseq/decoding/decode.py`), and the
decoder loop is a `lax.scan` over `decode_step`, whose signature is the scan body's
`(state, token) -> (state, logits, weights)` once the per-sentence `Memory` is bound.
`decode_step` is `embed_target`, then `decode_hidden` (the recurrence), then `logits`;
under teacher forcing only the middle one needs the scan.

References:
  Sutskever et al. 2014; Cho et al. 2014 (the encoder-decoder with a fixed context C).
  Bahdanau et al. 2015 (bidirectional encoder, s_0 = tanh(W_s h_1^<-), attention on the
    previous decoder state, context fed into the cell).
  Luong et al. 2015, Eq. 5-6 (attentional hidden h~_t = tanh(W_c [c_t; h_t]),
    p = softmax(W_s h~_t)) and Sec. 3.3 (input feeding).
  Press & Wolf 2017, "Using the Output Embedding to Improve Language Models" (weight
    tying: W_s is the target embedding matrix).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseq import fields
from jaxseq.errors import ConfigError
from jaxseq.model import attention as attention_lib
from jaxseq.model import cells, recurrence

Array = jax.Array


Memory = attention_lib.Memory


class DecoderState(NamedTuple):
  """The scan carry of the decoder; every search carries (and beam search reorders) it whole."""

  cells: tuple  # one carry per layer (GRU: h; LSTM: (c, h)), each [hidden]
  attentional: Array  # [hidden] h~_{t-1}, fed back when input feeding is on
  attention: Any = ()  # the attention's own state (attention.initial_state); () if it has none


def run_rnns(
  layer_cells: Sequence[cells.RecurrentCell],
  kind: str,
  x: Array,
  mask: Array,
  *,
  reverse: Sequence[bool],
  unroll: int = 1,
) -> tuple[tuple, tuple]:
  """Runs one cell per direction over a sentence, all in a single scan.

  Padded positions neither update nor output. A reversed direction reads the sentence
  from its end; the two directions of a bidirectional layer share one loop, so each
  iteration carries twice the work and there are half as many iterations.

  x: [src_len, in]; mask: [src_len] bool -> (outputs, one [src_len, hidden] per cell,
  in sentence order; final carries, one per cell: the state after the last real token
  in that cell's direction). `unroll` time steps run per loop iteration.
  """
  flip = lambda a, rev: a[::-1] if rev else a
  # The input projections are hoisted out of the scan: per cell, [src_len, hidden] per gate.
  x_gates = tuple(tuple(flip(g, rev) for g in c.project(x)) for c, rev in zip(layer_cells, reverse))
  masks = tuple(flip(mask, rev) for rev in reverse)
  weights = tuple(c.weights() for c in layer_cells)
  init = tuple(cells.zero_carry(kind, c.hidden_size, x.dtype) for c in layer_cells)
  states, finals = recurrence.run(kind, unroll, weights, x_gates, masks, init)
  outputs = tuple(
    flip(jnp.where(real[:, None], cells.carry_output(kind, s), 0.0), rev)
    for s, real, rev in zip(states, masks, reverse)
  )
  return outputs, finals


class Encoder(nn.Module):
  """Embedding, then `config.num_layers` (bi)directional GRU/LSTM layers."""

  config: "ModelConfig"
  src_vocab_size: int

  @nn.compact
  def __call__(self, src: Array, mask: Array, *, train: bool):
    """src: [src_len] int; mask: [src_len] bool.

    Returns outputs [src_len, hidden * directions] and, per layer, the final carries
    (a tuple of one carry per direction).
    """
    if src.ndim != 1 or mask.shape != src.shape:
      raise ValueError(f"Encoder takes one sentence: src [src_len], got {src.shape}")
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    x = nn.Embed(self.src_vocab_size, c.embed_size, dtype=dtype, name="embed")(src)
    x = nn.Dropout(c.dropout, deterministic=not train)(x)
    finals = []
    directions = ("fwd", "bwd") if c.bidirectional else ("fwd",)
    for layer in range(c.num_layers):
      layer_cells = [
        cells.RecurrentCell(c.cell, c.hidden_size, dtype, name=f"layer{layer}_{d}")
        for d in directions
      ]
      outs, layer_finals = run_rnns(
        layer_cells,
        c.cell,
        x,
        mask,
        reverse=[i > 0 for i in range(len(directions))],
        unroll=c.scan_unroll,
      )
      finals.append(layer_finals)
      x = jnp.concatenate(outs, axis=-1)  # [src_len, hidden * directions]
      if layer < c.num_layers - 1:
        x = nn.Dropout(c.dropout, deterministic=not train)(x)
    return x, tuple(finals)


class Readout(NamedTuple):
  """How the decoder's output vector is made from the step's context c_t and state h_t."""

  fn: Callable[..., Array]  # (model, context, h) -> out [hidden]
  reads_context: bool  # whether c_t reaches the output through it


READOUTS = {
  "attentional": Readout(
    lambda model, context, h: jnp.tanh(  # h~_t, Luong Eq. 5
      model.attentional_proj(jnp.concatenate([context, h], -1))
    ),
    reads_context=True,
  ),
  "none": Readout(lambda model, context, h: h, reads_context=False),  # the tutorial's out(h_t)
}
DTYPES = ("float32", "bfloat16")


def wiring_problem(attention: str, readout: str, input_feeding: bool) -> tuple[str, str] | None:
  """(field, what it allows) when config.model's attention, readout and input feeding do
  not fit together, else None. Unknown names are left to the tables' own checks."""
  if attention not in attention_lib.ATTENTIONS or readout not in READOUTS:
    return None
  reads_context = READOUTS[readout].reads_context
  if not reads_context and not attention_lib.ATTENTIONS[attention].wiring.context_in_state:
    return (
      "model.readout",
      f"a readout that reads the context ({_context_readouts()}) "
      f"with attention {attention!r}, whose context does not feed a cell",
    )
  if input_feeding and not reads_context:
    return (
      "model.input_feeding",
      f"False with readout {readout!r}: input feeding "
      "feeds back h~, which only a readout of the context makes",
    )
  return None


def _context_readouts() -> str:
  return ", ".join(name for name, r in READOUTS.items() if r.reads_context)


@dataclasses.dataclass(frozen=True)
class ModelConfig(fields.Config):
  """config.model: every field of the model, the one place each is defined. Allowed names
  come from the library's tables (cells.CELLS, attention.ATTENTIONS, READOUTS)."""

  section: ClassVar[str] = "model"

  cell: str = fields.field(
    "gru", "recurrent cell (a row of cells.CELLS)", fields.one_of(cells.CELLS)
  )
  attention: str = fields.field(
    "bahdanau",
    "a row of attention.ATTENTIONS (`python -m jaxseq.model.attention` prints them)",
    fields.one_of(attention_lib.ATTENTIONS),
  )
  readout: str = fields.field(
    "attentional",
    "output vector: attentional (tanh(W [c; h]), Luong) | none (h)",
    fields.one_of(READOUTS),
  )
  embed_size: int = fields.field(64, "word embedding size, source and target", fields.at_least(1))
  hidden_size: int = fields.field(
    128, "recurrent state size of encoder and decoder", fields.at_least(1)
  )
  attention_size: int = fields.field(
    128,
    "inner size of additive scores (bahdanau, coverage, luong_concat, conditional) and of "
    "luong_local_p's position layer",
    fields.at_least(1),
  )
  local_window: int = fields.field(
    10,
    "D: the window [p_t - D, p_t + D] of luong_local_m and luong_local_p (10 in Luong et al.)",
    fields.at_least(1),
  )
  num_layers: int = fields.field(
    1, "stacked recurrent layers in encoder and decoder", fields.at_least(1)
  )
  bidirectional: bool = fields.field(True, "encoder reads the source in both directions")
  input_feeding: bool = fields.field(False, "Luong 3.3: feed h~_{t-1} into the next decoder input")
  dropout: float = fields.field(
    0.0,
    "dropout on embeddings, between layers and before the output",
    fields.in_range(0, 1, high_open=True),
  )
  max_length: int = fields.field(
    16, "longest sentence (tokens, EOS included) the model handles", fields.at_least(1)
  )
  dtype: str = fields.field(
    "float32", "compute dtype (params and loss stay float32)", fields.one_of(DTYPES)
  )
  scan_unroll: int = fields.field(
    1, "recurrent time steps per lax.scan iteration (speed only)", fields.at_least(1)
  )
  tie_embeddings: bool = fields.field(
    False, "output layer = target embedding (needs embed_size == hidden_size)"
  )

  def check(self):
    """The attention, readout and input feeding fit together; tying needs equal sizes."""
    if problem := wiring_problem(self.attention, self.readout, self.input_feeding):
      field, allowed = problem
      raise ConfigError(field, getattr(self, field.split(".")[-1]), allowed)
    if self.tie_embeddings and self.embed_size != self.hidden_size:
      raise ConfigError(
        "model.tie_embeddings",
        True,
        f"False unless model.embed_size ({self.embed_size}) equals "
        f"model.hidden_size ({self.hidden_size}), the size of the "
        "vector the output layer reads",
      )


class Seq2Seq(nn.Module):
  """Encoder plus attention decoder. Use `encode` once, then `decode_step` per token.

  Its fields are config.model (a `ModelConfig`, which defines and documents each model
  field) and the two vocabulary sizes. The attention row of `attention.ATTENTIONS` says
  how the decoder is wired; `config.readout` picks the output vector from `READOUTS`.

  With dtype=bfloat16 embeddings, cells and projections compute in bfloat16 from
  float32 parameters; attention scores follow their float32 parameters, and the
  logits are returned in float32 so that the loss is computed in float32.
  """

  config: ModelConfig
  src_vocab_size: int
  tgt_vocab_size: int

  def setup(self):
    c = self.config
    h, dtype = c.hidden_size, jnp.dtype(c.dtype)
    self.wiring = attention_lib.entry(c.attention).wiring
    self.encoder = Encoder(c, self.src_vocab_size)
    if c.bidirectional:
      # Both directions are combined into one `hidden`-sized state per position and
      # per layer, so every attention score (dot included) sees equal sizes.
      self.memory_proj = nn.Dense(h, dtype=dtype, name="memory_proj")
      self.bridges = [nn.Dense(h, dtype=dtype, name=f"bridge{i}") for i in range(c.num_layers)]
    # Built by the table's row; its parameters are named "attention" whatever the row.
    self.attn = attention_lib.entry(c.attention).build(c).clone(parent=self, name="attention")
    self.tgt_embed = nn.Embed(self.tgt_vocab_size, c.embed_size, dtype=dtype, name="tgt_embed")
    self.decoder_cells = [
      cells.RecurrentCell(c.cell, h, dtype, name=f"decoder{i}") for i in range(c.num_layers)
    ]
    # Layers that only some wirings call; flax creates parameters only for those called.
    # The second cell (the conditional GRU's) reads c_t and advances the top layer.
    self.second_cell = cells.RecurrentCell(c.cell, h, dtype, name="second_cell")
    self.combine = nn.Dense(h, dtype=dtype, name="combine")
    self.attentional_proj = nn.Dense(h, use_bias=False, dtype=dtype, name="attentional")
    if c.tie_embeddings:
      self.output_bias = self.param(
        "output_bias", nn.initializers.zeros_init(), (self.tgt_vocab_size,)
      )
    else:
      self.output_proj = nn.Dense(self.tgt_vocab_size, dtype=dtype, name="output")
    self.drop = nn.Dropout(c.dropout)

  def _bridge(self, layer: int, finals: tuple):
    """Decoder initial carry of one layer from that encoder layer's final carries."""
    if not self.config.bidirectional:
      return finals[0]
    fwd, bwd = finals
    merge = lambda f, b: jnp.tanh(self.bridges[layer](jnp.concatenate([f, b], -1)))
    return jax.tree.map(merge, fwd, bwd)

  def encode(self, src: Array, *, train: bool = False) -> tuple[Memory, DecoderState]:
    """src: [src_len] int (0 = padding) -> the sentence's Memory and the first state."""
    mask = src != 0
    values, finals = self.encoder(src, mask, train=train)
    if self.config.bidirectional:
      values = self.memory_proj(values) * mask[:, None]  # [src_len, hidden]
    init = tuple(self._bridge(i, f) for i, f in enumerate(finals))
    context = cells.carry_output(self.config.cell, init[-1])  # C: the top layer's final state
    memory = Memory(values, self.attn.keys(values), mask, context)
    state = DecoderState(
      init,
      jnp.zeros((self.config.hidden_size,), values.dtype),
      attention_lib.initial_state(self.attn, memory),
    )
    return memory, state

  def _cells(self, carries: tuple, x: Array | tuple, train: bool) -> tuple[tuple, Array]:
    """x: the first layer's input, or its gate pre-activations (a tuple, one per gate)."""
    new, h = [], x
    for layer, (cell, carry) in enumerate(zip(self.decoder_cells, carries)):
      if layer > 0:
        h = self.drop(h, deterministic=not train)
      carry = cell.step(carry, h if isinstance(h, tuple) else cell.project(h))
      new.append(carry)
      h = cells.carry_output(self.config.cell, carry)
    assert not isinstance(h, tuple)
    return tuple(new), h

  def _first_input_layer(self) -> nn.Dense:
    """The layer that first reads the step's input [emb; ...]: combine, or the first cell's."""
    return self.combine if self.wiring.combine else self.decoder_cells[0].input

  def project_targets(self, emb: Array) -> tuple:
    """The embedding's part of the layers that read the decoder input, for any number of
    positions: emb [..., embed] -> what `decode_hidden(projected=)` takes at one position:
    (the first cell's part, one [..., hidden] per gate, or `combine`'s [..., hidden];
    the attention's `input_scores` when the query starts with the input, else None).

    Teacher forcing knows every embedding in advance, so this runs once before the loop
    and the loop projects only the rest of the input (the fed-back h~, the context).
    """
    y = cells.leading_rows(self._first_input_layer(), emb)
    first = y if self.wiring.combine else self.decoder_cells[0].project_gates(y)
    query = self.attn.input_scores(emb) if self.wiring.query_with_input else None
    return first, query

  def _first_layer(self, parts: list[Array], projected: Any) -> Any:
    """The first layer that reads the input concatenate(parts) (parts[0] is emb), applied:
    combine's [hidden], or the first cell's gate pre-activations (a tuple). `projected`:
    emb's part of it (`project_targets`), when made before the loop."""
    layer = self._first_input_layer()
    cell = self.decoder_cells[0]
    if projected is None:
      x = jnp.concatenate(parts, -1)
      return layer(x) if self.wiring.combine else cell.project(x)
    if len(parts) == 1:
      return projected
    rest = cells.trailing_rows(layer, jnp.concatenate(parts[1:], -1))
    if self.wiring.combine:
      return projected + rest
    return tuple(a + b for a, b in zip(projected, cell.project_gates(rest)))

  def decode_step(
    self, memory: Memory, state: DecoderState, token: Array, *, train: bool = False
  ) -> tuple[DecoderState, Array, Array]:
    """One output position: token [] int -> (state, logits [tgt_vocab], weights [src_len])."""
    if token.ndim != 0:
      raise ValueError(f"decode_step takes one token, got shape {token.shape}")
    emb = self.embed_target(token, train=train)
    state, out, weights = self.decode_hidden(memory, state, emb, train=train)
    return state, self.logits(out, train=train), weights

  # Teacher forcing knows every input in advance; `decode.teacher_forced` then runs
  # `embed_target` and `logits(..., readout=True)` on all positions at once and keeps only
  # `decode_hidden(..., readout=False)` in its scan. `decode_step` is the three in a row.

  @property
  def readout_outside_recurrence(self) -> bool:
    """True when the readout feeds only the output layer (no input feeding of h~)."""
    return not self.config.input_feeding

  def embed_target(self, tokens: Array, *, train: bool = False) -> Array:
    """tokens [...] int -> embeddings [..., embed] (with dropout when training)."""
    return self.drop(self.tgt_embed(tokens), deterministic=not train)

  def decode_hidden(
    self,
    memory: Memory,
    state: DecoderState,
    emb: Array,
    *,
    train: bool = False,
    readout: bool = True,
    projected: Any = None,
  ) -> tuple[DecoderState, Array | tuple, Array]:
    """The recurrent part of one position: emb [embed] -> (state, out, weights [src_len]).

    Follows the attention's `Wiring`: the query is h_{t-1} (or [x_t; h_{t-1}]) before
    the cell, whose input the context may join, or h_t after it (and with a second cell,
    that cell reads c_t and makes the step's h_t from it). A stateful attention reads its
    state from `state.attention` and its new state goes into the returned one. `out` is
    what `logits` reads: the readout of (c_t, h_t), h~_t for the attentional one. With
    readout=False (allowed when `readout_outside_recurrence`) `out` is the pair (c_t, h_t)
    itself, and `logits(out, readout=True)` applies the readout. `projected`: this
    position's `project_targets(emb)`, given when it was made before the loop.
    """
    if not readout and not self.readout_outside_recurrence:
      raise ValueError("readout=False needs input_feeding=False: h~ feeds the next step")
    wiring, attention_state = self.wiring, state.attention
    parts = [emb]  # the step's input x_t = concatenate(parts)
    if self.config.input_feeding:
      parts.append(state.attentional)  # Luong 3.3
    first, query_part = (None, None) if projected is None else projected
    if not wiring.query_after_cell:
      top = cells.carry_output(self.config.cell, state.cells[-1])  # h_{t-1} of the top layer
      query, input_part = top, {}
      if wiring.query_with_input and query_part is None:
        query = jnp.concatenate([*parts, top])
      elif wiring.query_with_input:  # the embedding's part was made before the loop
        query, input_part = jnp.concatenate([*parts[1:], top]), {"input_part": query_part}
      context, weights, attention_state = attention_lib.call(
        self.attn, query, memory, attention_state, **input_part
      )
      if wiring.feeds_cell:
        parts.append(context)
    x = self._first_layer(parts, first)
    if wiring.combine:
      x = nn.relu(x)
    carries, h = self._cells(state.cells, x, train)
    if wiring.query_after_cell:
      context, weights, attention_state = attention_lib.call(self.attn, h, memory, attention_state)
    if wiring.second_cell:
      top = self.second_cell.step(carries[-1], self.second_cell.project(context))
      carries = carries[:-1] + (top,)
      h = cells.carry_output(self.config.cell, top)
    if not readout:
      return DecoderState(carries, state.attentional, attention_state), (context, h), weights
    out = READOUTS[self.config.readout].fn(self, context, h)
    return DecoderState(carries, out, attention_state), out, weights

  def logits(self, out: Array | tuple, *, train: bool = False, readout: bool = False) -> Array:
    """out [..., hidden] -> logits [..., tgt_vocab], float32 (softmax and loss run in float32).

    readout=True: out is the pair (context, h) from decode_hidden(readout=False).
    """
    if readout:
      out = READOUTS[self.config.readout].fn(self, *out)
    h = self.drop(out, deterministic=not train)
    if self.config.tie_embeddings:
      logits = self.tgt_embed.attend(h) + self.output_bias  # E h + b, E: [tgt_vocab, embed]
    else:
      logits = self.output_proj(h)
    return logits.astype(jnp.float32)

  def __call__(self, src: Array, token: Array, *, train: bool = False):
    """Encodes and takes one decoder step; used by `init` to create every parameter."""
    memory, state = self.encode(src, train=train)
    return self.decode_step(memory, state, token, train=train)


def from_config(model_config, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
  """The Seq2Seq of config.model: a ModelConfig, or a mapping of its fields (a ConfigDict;
  a missing field takes its default)."""
  if not isinstance(model_config, ModelConfig):
    model_config = ModelConfig.from_dict(model_config)
  return Seq2Seq(model_config, src_vocab_size, tgt_vocab_size)
