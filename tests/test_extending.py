"""docs/extending.md, followed: a new attention is one class and one row.

The doc's first example attention is defined here, word for word, and registered as a row
of `attention.ATTENTIONS` for one test at a time (monkeypatch restores the table); its
second is the library's own `coverage` row (a test checks that the doc shows this very
code of both). Both go through every per-row check of tests/attention_checks.py, and the
stateful one through every search: teacher forcing, greedy, sampling, beam search, an
ensemble and an exported beam search.
"""

import functools
import inspect
import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export as jax_export

from configs import default
from jaxseq.data.vocab import BOS, EOS
from jaxseq.decoding import beam_search, decode, ensemble
from jaxseq.model import attention, cells, seq2seq
from jaxseq.model.attention import AFTER_CELL, Entry, attend, check_memory
from jaxseq.model.seq2seq import Seq2Seq
from jaxseq.serving import export
from jaxseq.training import configuration
from tests import attention_checks as checks
from tests.attention_checks import SRC, TGT
from tests.conftest import REPO, init_params, tiny_model

DOC = pathlib.Path(REPO) / "docs" / "extending.md"
MAX_LEN = 7  # output positions of the searches below


class ScaledDotAttention(nn.Module):
  """score(h_t, h_s) = h_t . h_s / sqrt(size) (Vaswani et al. 2017, Eq. 1)."""

  def keys(self, values):
    return values  # run once per sentence, before the decoder scan

  def __call__(self, query, memory):
    check_memory(memory)
    scores = memory.keys @ query
    scores = scores / jnp.sqrt(jnp.asarray(query.shape[-1], scores.dtype))
    return attend(scores, memory)  # masked softmax, then the weighted sum of the values


# Test-only names, so that no compiled function of a library row is reused for them.
ROWS = {
  "doc_scaled_dot": Entry(
    lambda m: ScaledDotAttention(),
    AFTER_CELL,
    "Vaswani et al. 2017, Eq. 1",
    "the dot score over sqrt(hidden)",
  ),
}
STATEFUL = "coverage"  # the doc's second example is the library's own row


def test_the_doc_shows_this_code_and_names_only_what_exists():
  doc = DOC.read_text()
  for cls in (ScaledDotAttention, attention.CoverageAttention):
    assert inspect.getsource(cls) in doc, f"docs/extending.md lacks {cls.__name__} as here"
  for field in attention.Entry._fields:  # the table of a row's parts has every one
    assert f"| `{field}" in doc, f"docs/extending.md lacks Entry.{field}"
  for field in attention.Wiring.__dataclass_fields__:
    assert f"| `wiring.{field}` |" in doc, f"docs/extending.md lacks Wiring.{field}"
  modules = {
    "attention": attention,
    "seq2seq": seq2seq,
    "configuration": configuration,
    "cells": cells,
    "Seq2Seq": Seq2Seq,
  }
  named = re.findall(r"`(attention|seq2seq|configuration|cells|Seq2Seq)\.(\w+)", doc)
  assert len(named) > 5
  for module, name in named:
    assert hasattr(modules[module], name), f"docs/extending.md names {module}.{name}"


@pytest.fixture(params=[*ROWS, STATEFUL])
def row(request, monkeypatch) -> str:
  """One of the doc's rows, in the table (a test-only one for the test's length)."""
  if request.param in ROWS:
    monkeypatch.setitem(attention.ATTENTIONS, request.param, ROWS[request.param])
  return request.param


def test_a_new_row_passes_every_per_row_check(row):
  model = tiny_model(attention=row, bidirectional=True)
  params = init_params(model)
  checks.check_builds(row, model)
  checks.check_padding(model, params)  # a distribution; padding: no weight, output, gradient
  checks.check_batch_equals_loop(model, params)
  checks.check_scan_equals_loop(model, params)
  config = default.get_config()
  config.model.attention = row
  configuration.validate(config)  # allowed without an edit anywhere else
  entry = attention.ATTENTIONS[row]
  assert f"| `{row}` | {entry.description} | {entry.reference} |" in attention.table_markdown()


def test_the_doc_scaled_dot_scores_as_the_librarys(monkeypatch):
  monkeypatch.setitem(attention.ATTENTIONS, "doc_scaled_dot", ROWS["doc_scaled_dot"])
  library = tiny_model(attention="scaled_dot")
  params = init_params(library)  # neither has parameters of its own: the same tree serves
  expected, expected_weights = checks.teacher_forced(library, params, SRC[2], TGT[2])
  logits, weights = checks.teacher_forced(
    tiny_model(attention="doc_scaled_dot"), params, SRC[2], TGT[2]
  )
  np.testing.assert_allclose(logits, expected, atol=1e-6)
  np.testing.assert_allclose(weights, expected_weights, atol=1e-6)


# The stateful row through every search.


def _without_coverage(params):
  """The same tree with w_c, the coverage term's weights, set to zero."""
  attn = params["params"]["attention"]
  zero = {"kernel": jnp.zeros_like(attn["coverage"]["kernel"])}
  return {"params": {**params["params"], "attention": {**attn, "coverage": zero}}}


def _as_bahdanau(params):
  """The tree of the same model with the stateless `bahdanau` row (no coverage weights)."""
  attn = {k: v for k, v in params["params"]["attention"].items() if k != "coverage"}
  return {"params": {**params["params"], "attention": attn}}


@pytest.fixture
def stateful():
  """(model, params) of the stateful row; larger weights peak the outputs, so that scores
  rarely tie (and make the coverage term larger)."""
  model = tiny_model(attention=STATEFUL, bidirectional=True)
  return model, jax.tree.map(lambda x: 3.0 * x, init_params(model))


def test_the_state_is_carried_and_changes_the_output(stateful):
  model, params = stateful
  logits, weights = checks.teacher_forced(model, params, SRC[2], TGT[2])
  # Without its state term the row is the stateless additive row, number for number.
  no_term, no_term_weights = checks.teacher_forced(model, _without_coverage(params), SRC[2], TGT[2])
  additive = tiny_model(attention="bahdanau", bidirectional=True)
  plain, plain_weights = checks.teacher_forced(additive, _as_bahdanau(params), SRC[2], TGT[2])
  np.testing.assert_allclose(no_term, plain, atol=1e-6)
  np.testing.assert_allclose(no_term_weights, plain_weights, atol=1e-6)
  assert np.abs(np.asarray(logits - no_term)).max() > 1e-2  # the state is used
  assert np.abs(np.asarray(weights[1:] - no_term_weights[1:])).max() > 1e-2
  # The decoder state holds the running sum of the weights given so far.
  memory, state = model.apply(params, SRC[2], method=Seq2Seq.encode)
  np.testing.assert_array_equal(state.attention, 0.0)
  for t in range(3):
    state, _, _ = model.apply(params, memory, state, TGT[2, t], method=Seq2Seq.decode_step)
  np.testing.assert_allclose(state.attention, weights[:3].sum(0), atol=1e-5)


def _scored_lengths(tokens, lengths):
  """Tokens that count in a score: those before EOS, and EOS when it was produced."""
  tokens, lengths = np.asarray(tokens), np.asarray(lengths)
  at = np.minimum(lengths, tokens.shape[-1] - 1)[..., None]
  ended = (lengths < tokens.shape[-1]) & (np.take_along_axis(tokens, at, -1)[..., 0] == EOS)
  return lengths + ended


@jax.jit
def _tgt_in(tokens):
  """Outputs [n, len] -> the decoder inputs that produce them: BOS, then all but the last."""
  return jnp.concatenate([jnp.full_like(tokens[:, :1], BOS), tokens[:, :-1]], 1)


_batch_forced = jax.jit(decode.batch_teacher_forced, static_argnames=("model",))
_ensemble_forced = jax.jit(
  jax.vmap(ensemble.teacher_forced_log_probs, in_axes=(None, None, 0, 0)), static_argnums=0
)


def _forced_log_probs(models, params, src, tokens, lengths):
  """log P of each output [n, len] given src, by teacher forcing (the ensemble's
  combination when models is a tuple): [n]."""
  count = _scored_lengths(tokens, lengths)
  srcs = jnp.broadcast_to(src, (tokens.shape[0],) + src.shape)
  if isinstance(models, tuple):
    log_probs = _ensemble_forced(models, params, srcs, _tgt_in(tokens))
  else:
    keys = jax.random.split(jax.random.key(0), tokens.shape[0])
    logits, _ = _batch_forced(models, params, srcs, _tgt_in(tokens), keys)
    log_probs = jax.nn.log_softmax(logits)
  picked = np.take_along_axis(np.asarray(log_probs), np.asarray(tokens)[..., None], -1)[..., 0]
  return (picked * (np.arange(tokens.shape[1]) < count[:, None])).sum(1)


_greedy = jax.jit(decode.batch_greedy, static_argnames=("model", "max_len"))


@functools.partial(jax.jit, static_argnames=("model", "max_len"))
def _sample(model, params, src, keys, *, max_len, temperature):
  sampling = decode.Sampling(temperature)
  return decode.batch_sample(model, params, decode.Inputs(src, keys), sampling, max_len=max_len)


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "nbest", "max_len"))
def _beam(model, params, src, *, beam_size, nbest, max_len, alpha, **limit):
  beam = beam_search.Beam(beam_size, max_len, nbest, alpha, **limit)
  return beam_search.batch_beam_search(model, params, src, beam)


def _check_beam(models, params, tokens, lengths, scores, alpha):
  """Every hypothesis's penalised score [batch, nbest] is log P / lp by teacher forcing."""
  for row in range(SRC.shape[0]):
    expected = _forced_log_probs(models, params, SRC[row], tokens[row], lengths[row])
    count = _scored_lengths(tokens[row], lengths[row])
    np.testing.assert_allclose(
      scores[row], expected / beam_search.length_penalty(count, alpha), atol=1e-4
    )


def test_greedy_sampling_and_own_predictions_score_as_teacher_forcing(stateful):
  model, params = stateful
  greedy = _greedy(model, params, SRC, max_len=MAX_LEN)
  keys = jax.random.split(jax.random.key(1), SRC.shape[0])
  sampled = _sample(model, params, SRC, keys, max_len=MAX_LEN, temperature=1.0)
  for out in (greedy, sampled):
    for row in range(SRC.shape[0]):
      expected = _forced_log_probs(
        model, params, SRC[row], out.tokens[row : row + 1], out.length[row : row + 1]
      )
      np.testing.assert_allclose(out.log_prob[row], expected[0], atol=1e-4)
  # Teacher forcing with ratio 0 feeds its own argmax: greedy's tokens and log P.
  tgt = jnp.full((MAX_LEN,), BOS, jnp.int32)
  logits, _ = checks.teacher_forced(model, params, SRC[0], tgt, teacher_forcing_ratio=0.0)
  count = int(_scored_lengths(greedy.tokens[:1], greedy.length[:1])[0])
  np.testing.assert_array_equal(jnp.argmax(logits, -1)[:count], greedy.tokens[0, :count])
  own = jax.nn.log_softmax(logits)[jnp.arange(count), greedy.tokens[0, :count]].sum()
  np.testing.assert_allclose(own, greedy.log_prob[0], atol=1e-4)


def test_beam_search_reorders_the_state_with_the_beams(stateful):
  model, params = stateful
  # A lower EOS logit keeps the hypotheses growing to the limit, through many reorderings
  # of beams whose states differ (short ones would leave the check little to see).
  output = params["params"]["output"]
  params["params"]["output"] = {**output, "bias": output["bias"].at[EOS].add(-3.0)}
  result = _beam(model, params, SRC, beam_size=3, nbest=3, max_len=MAX_LEN, alpha=0.6)
  assert (result.lengths == MAX_LEN).mean() > 0.5
  _check_beam(model, params, result.tokens, result.lengths, result.scores, 0.6)
  # The search differs from that of the same attention without its state term.
  plain = _beam(
    model, _without_coverage(params), SRC, beam_size=3, nbest=3, max_len=MAX_LEN, alpha=0.6
  )
  assert not np.array_equal(result.tokens, plain.tokens)


def test_an_ensemble_carries_each_members_state(stateful):
  model, params = stateful
  dot = tiny_model(attention="luong_dot", bidirectional=True)
  models = (model, dot)  # a stateful and a stateless member, states of different shapes
  members = (params, init_params(dot, seed=1))
  greedy = _greedy(models, members, SRC, max_len=MAX_LEN)
  for row in range(SRC.shape[0]):
    expected = _forced_log_probs(
      models, members, SRC[row], greedy.tokens[row : row + 1], greedy.length[row : row + 1]
    )
    np.testing.assert_allclose(greedy.log_prob[row], expected[0], atol=1e-4)
  result = _beam(models, members, SRC, beam_size=3, nbest=3, max_len=MAX_LEN, alpha=0.0)
  _check_beam(models, members, result.tokens, result.lengths, result.scores, 0.0)


def test_the_exported_beam_search_keeps_the_state(stateful):
  model, params = stateful
  serialised = export.export_beam_search(
    model, params, export.Shape(beam_size=3, width=SRC.shape[1], max_length=MAX_LEN), []
  )
  function = jax_export.deserialize(bytearray(serialised))
  tokens, lengths, scores, _ = function.call(
    jax.tree.leaves(params), SRC, np.float32(0.6), np.float32(2.0), np.int32(1), np.float32(0)
  )
  _check_beam(model, params, tokens, lengths, scores, 0.6)
  expected = _beam(
    model,
    params,
    SRC,
    beam_size=3,
    nbest=3,
    max_len=MAX_LEN,
    alpha=0.6,
    max_length_ratio=2.0,
    max_length_offset=1,
  )
  np.testing.assert_array_equal(tokens, expected.tokens)
  np.testing.assert_allclose(scores, expected.scores, atol=1e-5)
