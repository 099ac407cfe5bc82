"""Lexically constrained beam search (jaxseq/decoding/constraints.py): every output holds
every phrase or the slot is empty, sentences without constraints are searched exactly as
before, scores are the model's, an exhaustive beam is exact, errors are one line.

Tiny random models with fixed shapes (max_constraint_tokens, beam sizes, batch), so that
each search compiles once for the whole module.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxseq.data.vocab import BOS, EOS, PAD
from jaxseq.decoding import beam_search, constraints, ensemble
from tests.test_beam_search import all_outputs, model_and_params, random_sources

VOCAB = 12
MAX_LEN = 7
MAX_TOKENS = 5  # max_constraint_tokens of every search here
BATCH = 4
NEG_INF = beam_search.NEG_INF
WORDS = st.integers(3, VOCAB - 1)  # UNK and the words: what a constraint may hold


def _no_pad(params, eos_bonus=0.0):
  """PAD is never output (it would read as padding below); EOS is made likelier so that
  outputs end at varied lengths, not all at the limit."""

  def fix(path, x):
    if "output" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path):
      return x.at[PAD].set(-1e4).at[EOS].add(eos_bonus)
    return x

  return jax.tree_util.tree_map_with_path(fix, params)


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "nbest", "max_len"))
def _search(model, params, src, prefix, cons, alpha, ratio, *, beam_size, nbest, max_len):
  """One compiled search per (model, beam, nbest, constrained or not); the rest is traced."""
  beam = beam_search.Beam(beam_size, max_len, nbest, alpha, ratio, 1)
  return beam_search.batch_beam_search(model, params, src, beam, prefix=prefix, constraints=cons)


@functools.partial(jax.jit, static_argnames=("model",))
def _teacher_forced(model, params, src, outputs):
  """log P of each output [n, len] (tokens up to and including EOS, then PAD) given its
  source [n, src_len], one model or an ensemble, scored position by position."""
  models, params = ensemble.members(model, params)
  tgt_in = jnp.concatenate([jnp.full((outputs.shape[0], 1), BOS), outputs[:, :-1]], axis=1)
  score = lambda s, t: ensemble.teacher_forced_log_probs(models, params, s, t)
  log_probs = jax.vmap(score)(src, tgt_in)
  picked = jnp.take_along_axis(log_probs, outputs[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(outputs != PAD, picked, 0.0), axis=1)


def _contains(output, phrase):
  n = len(phrase)
  return any(output[i : i + n] == list(phrase) for i in range(len(output) - n + 1))


def _check_outputs(result, src, phrases, alpha, model, params, prefix=None):
  """Every filled slot holds every phrase (and the prefix) and scores what the model says;
  every empty slot is empty: score and log P NEG_INF, PAD tokens."""
  tokens, lengths = np.asarray(result.tokens), np.asarray(result.lengths)
  scores, log_probs = np.asarray(result.scores), np.asarray(result.log_probs)
  filled = scores > NEG_INF / 2
  for row, rank in zip(*np.nonzero(filled)):
    output = tokens[row, rank, : lengths[row, rank]].tolist()
    assert EOS not in output and PAD not in output
    for phrase in phrases[row]:
      assert _contains(output, phrase), (output, phrases[row])
    if prefix is not None:
      wanted = [int(p) for p in prefix[row] if p != PAD]
      assert output[: len(wanted)] == wanted
  for row, rank in zip(*np.nonzero(~filled)):
    assert phrases[row], "a sentence without constraints always gets its n-best"
    assert log_probs[row, rank] <= NEG_INF / 2
    assert np.all(tokens[row, rank] == PAD)
  # The score is log P of the output (EOS included when it ended) by teacher forcing,
  # divided by the length penalty.
  rows, ranks = np.nonzero(filled)
  if len(rows):
    recomputed = _teacher_forced(
      model, params, jnp.asarray(src)[rows], jnp.asarray(tokens[rows, ranks])
    )
    np.testing.assert_allclose(log_probs[rows, ranks], recomputed, rtol=1e-4, atol=1e-4)
    counted = (tokens[rows, ranks] != PAD).sum(-1)
    penalty = np.asarray(beam_search.length_penalty(counted, alpha))
    np.testing.assert_allclose(scores[rows, ranks], recomputed / penalty, rtol=1e-4, atol=1e-4)
  return filled


def _assert_same(a, b, rows, exactly=True):
  """The rows of two results agree: bit for bit, or the same tokens and lengths with
  numbers equal up to float rounding (computed by another program)."""
  for field in beam_search.BeamResult._fields:
    x, y = np.asarray(getattr(a, field))[rows], np.asarray(getattr(b, field))[rows]
    if exactly or field in ("tokens", "lengths"):
      np.testing.assert_array_equal(x, y, err_msg=field)
    else:
      np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6, err_msg=field)


@pytest.fixture(scope="module")
def small():
  model, params = model_and_params(tgt_vocab=VOCAB, max_length=MAX_LEN)
  return model, _no_pad(params, eos_bonus=3.0)


PHRASES = st.lists(st.lists(WORDS, min_size=1, max_size=3), max_size=3).filter(
  lambda phrases: sum(map(len, phrases)) <= MAX_TOKENS
)


@settings(max_examples=25, deadline=None)
@given(
  phrases=st.lists(PHRASES, min_size=BATCH, max_size=BATCH),
  prefixes=st.lists(st.lists(WORDS, max_size=2), min_size=BATCH, max_size=BATCH),
  alpha=st.sampled_from([0.0, 0.6]),
  ratio=st.sampled_from([100.0, 1.0]),
)
def test_outputs_hold_every_phrase_and_unconstrained_rows_are_unchanged(
  small, phrases, prefixes, alpha, ratio
):
  model, params = small
  src = random_sources(BATCH)
  prefix = np.full((BATCH, 2), PAD, np.int32)
  for row, p in enumerate(prefixes):
    prefix[row, : len(p)] = p
  cons = constraints.stack(phrases, MAX_TOKENS)
  sizes = dict(beam_size=4, nbest=3, max_len=MAX_LEN)
  result = _search(model, params, src, prefix, cons, alpha, ratio, **sizes)
  _check_outputs(result, src, phrases, alpha, model, params, prefix)
  # Rows without constraints: bit for bit the search without constraints.
  plain = _search(model, params, src, prefix, None, alpha, ratio, **sizes)
  _assert_same(result, plain, [row for row in range(BATCH) if not phrases[row]])


@pytest.mark.parametrize("alpha", [0.0, 3.0])  # 3.0: a large penalty, even on short outputs
def test_constraints_that_cannot_fit_leave_the_sentence_without_output(small, alpha):
  model, params = small
  src = random_sources(BATCH)
  # The output limit is one more than the source's length (ratio 1, offset 1): five
  # constraint tokens do not fit after a source of one or two tokens.
  lengths = np.asarray((src != PAD).sum(1))
  phrases = [[[4, 5, 6, 7, 8]]] * BATCH
  cons = constraints.stack(phrases, MAX_TOKENS)
  result = _search(model, params, src, None, cons, alpha, 1.0, beam_size=4, nbest=3, max_len=7)
  filled = _check_outputs(result, src, phrases, alpha, model, params)
  assert not filled[lengths + 1 < 5].any()
  assert (lengths + 1 < 5).any()


def test_a_phrase_of_the_best_output_changes_nothing_at_beam_one(small):
  """At beam 1 the search keeps its single best candidate, so a constraint the best output
  already holds leaves the search as it was."""
  model, params = small
  src = random_sources(8, seed=5)
  sizes = dict(beam_size=1, nbest=1, max_len=MAX_LEN)
  for alpha in (0.0, 0.6):
    plain = _search(model, params, src, None, None, alpha, 100.0, **sizes)
    rng = np.random.default_rng(0)
    phrases = []
    for row in range(src.shape[0]):
      output = np.asarray(plain.tokens[row, 0, : plain.lengths[row, 0]]).tolist()
      if not output:
        phrases.append([])
        continue
      start = int(rng.integers(0, len(output)))
      end = int(rng.integers(start + 1, min(len(output), start + MAX_TOKENS) + 1))
      phrases.append([output[start:end]])
    cons = constraints.stack(phrases, MAX_TOKENS)
    result = _search(model, params, src, None, cons, alpha, 100.0, **sizes)
    _assert_same(result, plain, slice(None), exactly=False)


def test_an_exhaustive_beam_finds_the_best_outputs_that_hold_the_phrases():
  limit, vocab = 3, 5
  model, params = model_and_params(tgt_vocab=vocab, max_length=limit)
  params = _no_pad(params)
  outputs = all_outputs(vocab, limit)
  beam = len(outputs)  # nothing is ever pruned
  src = random_sources(3, seed=2)
  phrase_sets = [[[3]], [[4, 3]], [[3], [4]]]
  cons = constraints.stack(phrase_sets, 2)
  for alpha in (0.0, 1.0):
    result = _search(
      model, params, src, None, cons, alpha, 100.0, beam_size=beam, nbest=3, max_len=limit
    )
    for row, phrases in enumerate(phrase_sets):
      tokens = [o[(o != PAD) & (o != EOS)].tolist() for o in outputs]
      holds = np.asarray([all(_contains(t, p) for p in phrases) for t in tokens])
      sources = jnp.broadcast_to(src[row], (int(holds.sum()),) + src[row].shape)
      log_p = np.asarray(_teacher_forced(model, params, sources, jnp.asarray(outputs[holds])))
      lp = np.asarray(beam_search.length_penalty((outputs[holds] != PAD).sum(1), alpha))
      scores = log_p / lp
      order = np.argsort(-scores, kind="stable")
      for rank in range(3):
        np.testing.assert_array_equal(result.tokens[row, rank], outputs[holds][order[rank]])
        np.testing.assert_allclose(result.scores[row, rank], scores[order[rank]], rtol=1e-4)


def test_an_ensemble_of_two_with_a_prefix():
  model_a, params_a = model_and_params(tgt_vocab=VOCAB, max_length=MAX_LEN, seed=0)
  model_b, params_b = model_and_params(tgt_vocab=VOCAB, max_length=MAX_LEN, seed=1)
  model = (model_a, model_b)
  params = (_no_pad(params_a, 3.0), _no_pad(params_b, 3.0))
  src = random_sources(BATCH, seed=7)
  prefix = np.asarray([[5, 6], [5, PAD], [7, PAD], [PAD, PAD]], np.int32)
  # A phrase the prefix already holds, one that continues it, two phrases, none.
  phrases = [[[6]], [[5, 9]], [[8], [9, 10]], []]
  cons = constraints.stack(phrases, MAX_TOKENS)
  sizes = dict(beam_size=4, nbest=4, max_len=MAX_LEN)
  result = _search(model, params, src, prefix, cons, 0.6, 100.0, **sizes)
  filled = _check_outputs(result, src, phrases, 0.6, model, params, prefix)
  assert filled[:, 0].all()
  plain = _search(model, params, src, prefix, None, 0.6, 100.0, **sizes)
  _assert_same(result, plain, [3])
  # The prefix meets the first row's constraint: that row is the unconstrained search's.
  _assert_same(result, plain, [0], exactly=False)


def test_one_sentence_searches_as_its_row_of_a_batch(small):
  model, params = small
  src = random_sources(BATCH)
  phrases = [[[5], [6, 7]], [], [[8]], [[9, 9]]]
  cons = constraints.stack(phrases, MAX_TOKENS)
  batch = _search(model, params, src, None, cons, 0.6, 100.0, beam_size=4, nbest=3, max_len=7)
  one = jax.jit(
    lambda params, src, cons: beam_search.beam_search(
      model, params, src, beam_search.Beam(4, 7, 3, 0.6), constraints=cons
    )
  )
  for row in (0, 1):
    single = one(params, src[row], constraints.from_phrases(phrases[row], MAX_TOKENS))
    alone = beam_search.BeamResult(*(x[None] for x in single))
    in_batch = beam_search.BeamResult(*(x[row : row + 1] for x in batch))
    _assert_same(alone, in_batch, [0], exactly=False)


def test_progress_tracks_phrases_and_forgets_abandoned_matches():
  cons = jax.tree.map(jnp.asarray, constraints.from_phrases([[5, 6, 7], [6, 8]], 6))

  def run(tokens, measure=constraints.met_count):
    progress = constraints.start(cons)
    counts = []
    for token in tokens:
      progress = constraints.advance(cons, progress, jnp.int32(token))
      counts.append(int(measure(cons, progress)))
    return counts, bool(constraints.all_met(cons, progress))

  assert run([5, 6, 7, 6, 8]) == ([1, 2, 3, 4, 5], True)
  assert run([5, 6, 8]) == ([1, 2, 2], False)  # [6, 8] met, [5, 6, 7] abandoned
  assert run([5, 5, 9, 6]) == ([1, 1, 0, 1], False)  # a new match on a repeated token
  assert run([6, 8, 5, 6, 7]) == ([1, 2, 3, 4, 5], True)
  # The most tokens one unmet phrase still lacks.
  assert int(constraints.needed(cons, constraints.start(cons))) == 3
  assert run([5, 6, 8, 5, 6, 7], constraints.needed)[0] == [2, 1, 3, 2, 1, 0]
  tokens, useful = constraints.next_tokens(cons, constraints.start(cons))
  assert sorted(np.asarray(tokens)[np.asarray(useful)].tolist()) == [5, 6]


def test_candidates_are_the_best_extensions_and_the_useful_constraint_tokens_once_each():
  cons = jax.tree.map(jnp.asarray, constraints.from_phrases([[5], [5, 6]], 4))
  after_5 = constraints.advance(cons, constraints.start(cons), jnp.int32(5))
  progress = jax.tree.map(lambda a, b: jnp.stack([a, b]), after_5, constraints.start(cons))
  log_probs = jnp.log(jnp.full((2, 8), 0.01).at[0, 3].set(0.9).at[1, 4].set(0.8))
  origin, token, cand_log_probs = constraints.candidates(cons, progress, log_probs, k=2)
  real = np.asarray(cand_log_probs) > NEG_INF / 2
  pairs = list(zip(np.asarray(origin)[real].tolist(), np.asarray(token)[real].tolist()))
  # Hypothesis 0 has met [5] and begun [5, 6]: it may begin [5, 6] again or continue it;
  # hypothesis 1 may begin either phrase, with the same token.
  assert sorted(pairs) == [(0, 3), (0, 5), (0, 6), (1, 4), (1, 5)]
  np.testing.assert_allclose(
    np.asarray(cand_log_probs)[real], np.asarray(log_probs)[tuple(zip(*pairs))]
  )


def test_allocation_fills_the_beam_round_by_round_over_banks():
  log_probs = jnp.asarray([-1.0, -2.0, -3.0, -5.0, -4.0, -6.0, NEG_INF])
  banks = jnp.asarray([0, 0, 0, 1, 2, 2, 2])
  # Round 0: the best of banks 0, 2, 1 by score; round 1: bank 0's second, then bank 2's.
  assert constraints.allocate(log_probs, banks, 5).tolist() == [0, 4, 3, 1, 5]
  # One bank only: the best by score, impossible candidates last.
  assert constraints.allocate(log_probs, jnp.zeros(7, int), 7).tolist() == [0, 1, 2, 4, 3, 5, 6]


@pytest.mark.parametrize(
  "phrases, max_tokens, message",
  [
    ([[4], []], 4, "constraint phrase 1 is empty"),
    ([[4, 5], [6, 7, 8]], 4, "the constraints hold 5 tokens, more than max_constraint_tokens=4"),
    ([[4, EOS]], 4, "constraint phrase 0 holds token id 2"),
    ([[4]], 0, "max_constraint_tokens must be at least 1"),
    ([[4, VOCAB]], 4, f"constraint phrase 0 holds token id {VOCAB}, outside the target"),
  ],
)
def test_one_line_errors(phrases, max_tokens, message):
  with pytest.raises(ValueError, match=message) as error:
    constraints.from_phrases(phrases, max_tokens, vocab_size=VOCAB)
  assert "\n" not in str(error.value)
