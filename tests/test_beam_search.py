"""Beam search: greedy at beam 1, exact when the beam is exhaustive, fixed shapes."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.data.vocab import BOS, EOS
from jaxseq.decoding import beam_search, decode
from tests.conftest import tiny_model

TGT_VOCAB = 5  # PAD, BOS, EOS, UNK and one word


def model_and_params(tgt_vocab=TGT_VOCAB, max_length=6, seed=0, attention="bahdanau"):
  model = tiny_model(
    9,
    tgt_vocab,
    embed_size=8,
    hidden_size=8,
    attention=attention,
    attention_size=8,
    bidirectional=True,
    max_length=max_length,
  )
  params = jax.jit(model.init)(jax.random.key(seed), jnp.ones((2,), jnp.int32), jnp.int32(BOS))
  # Larger weights make the output distributions peaked, so scores rarely tie.
  params = jax.tree.map(lambda x: 3.0 * x, params)
  return model, params


def random_sources(count, src_len=5, seed=1):
  rng = np.random.default_rng(seed)
  src = rng.integers(4, 9, size=(count, src_len)).astype(np.int32)
  lengths = rng.integers(1, src_len + 1, size=count)
  src[np.arange(src_len)[None, :] >= lengths[:, None]] = 0
  return jnp.asarray(src)


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "nbest", "max_len"))
def _search(model, params, src, alpha, ratio, offset, *, beam_size, nbest, max_len):
  """One compiled search per beam size; alpha and the length limit are traced."""
  return beam_search.batch_beam_search(
    model,
    params,
    src,
    beam_search.Beam(
      beam_size=beam_size,
      nbest=nbest,
      max_len=max_len,
      alpha=alpha,
      max_length_ratio=ratio,
      max_length_offset=offset,
    ),
  )


@pytest.fixture(scope="module")
def small():
  return model_and_params(tgt_vocab=12, max_length=7)


def test_beam_size_one_is_greedy(small):
  model, params = small
  src = random_sources(16)
  greedy = jax.jit(decode.batch_greedy, static_argnames=("model", "max_len"))
  tokens, attn, length, _ = greedy(model, params, src, max_len=7)
  result = _search(model, params, src, 0.0, 100.0, 0, beam_size=1, nbest=1, max_len=7)
  np.testing.assert_array_equal(result.lengths[:, 0], length)
  for row in range(src.shape[0]):
    n = int(length[row])
    end = min(n + 1, 7)  # EOS included when there is one
    np.testing.assert_array_equal(result.tokens[row, 0, :end], tokens[row, :end])
    np.testing.assert_allclose(result.attention[row, 0, :end], attn[row, :end], atol=1e-5)


def teacher_forced_outputs(model, params, src, outputs):
  """Each output [n, len] (EOS-ended or cut at the limit, padded with 0 after its end) of
  one source, teacher forced: (log P of each, float64 [n]; lengths [n]; attention [n, len,
  src_len]; the mask of its steps [n, len], EOS included)."""
  tgt_in = np.zeros_like(outputs)
  tgt_in[:, 0] = BOS
  tgt_in[:, 1:] = outputs[:, :-1]
  srcs = jnp.broadcast_to(src, (len(outputs),) + src.shape)
  keys = jax.random.split(jax.random.key(0), len(outputs))
  scan = jax.jit(decode.batch_teacher_forced, static_argnames=("model",))
  logits, attention = scan(model, params, srcs, jnp.asarray(tgt_in), keys)
  log_probs = np.asarray(jax.nn.log_softmax(logits), np.float64)
  picked = np.take_along_axis(log_probs, outputs[..., None], -1)[..., 0]
  lengths = (outputs != 0).sum(1)
  steps = np.arange(outputs.shape[1])[None, :] < lengths[:, None]
  return (picked * steps).sum(1), lengths, np.asarray(attention, np.float64), steps


def _score_all(model, params, src, outputs, alpha):
  """log P / lp of each output [n, len], teacher forced."""
  log_p, lengths, _, _ = teacher_forced_outputs(model, params, src, outputs)
  return log_p / np.asarray(beam_search.length_penalty(lengths, alpha))


def without_pad_output(params):
  """params whose output layer scores PAD out (bias -1e4), so that no search emits it."""
  return jax.tree_util.tree_map_with_path(
    lambda path, x: (
      x.at[0].set(-1e4)
      if "output" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path)
      else x
    ),
    params,
  )


def all_outputs(vocab, limit):
  """Every output up to `limit` tokens: ends at its first EOS or at the limit; 0-padded."""
  words = [w for w in range(vocab)]
  outputs = []
  for n in range(1, limit + 1):
    for seq in itertools.product(words, repeat=n):
      if EOS in seq[:-1]:
        continue
      if n < limit and seq[-1] != EOS:
        continue
      if 0 in seq:  # PAD would be ambiguous with padding in the table below
        continue
      outputs.append(list(seq) + [0] * (limit - n))
  return np.asarray(outputs, np.int32)


@pytest.mark.parametrize("attention", ["bahdanau", "coverage"])
def test_exhaustive_beam_finds_brute_force_best(attention):
  """Also with a stateful attention (`coverage`). That its state follows the hypotheses
  through the reorderings is checked on longer outputs in tests/test_extending.py (at this
  length the best outputs barely depend on it)."""
  limit = 3
  model, params = model_and_params(max_length=limit, attention=attention)
  params = without_pad_output(params)  # PAD is never a useful output
  outputs = all_outputs(TGT_VOCAB, limit)
  beam = len(outputs)  # wider than every step's candidates: nothing is pruned
  sources = random_sources(3, seed=2)
  for alpha in (0.0, 1.0):
    result = _search(
      model, params, sources, alpha, 100.0, 0, beam_size=beam, nbest=3, max_len=limit
    )
    for row, src in enumerate(sources):
      scores = np.asarray(_score_all(model, params, src, outputs, alpha))
      order = np.argsort(-scores)
      for rank in range(3):
        expected = outputs[order[rank]]
        n = int((expected != 0).sum())
        np.testing.assert_array_equal(result.tokens[row, rank, :n], expected[:n])
        np.testing.assert_allclose(result.scores[row, rank], scores[order[rank]], rtol=1e-4)


def test_nbest_is_sorted_and_lengths_match_tokens(small):
  model, params = small
  result = _search(model, params, random_sources(8), 0.6, 100.0, 0, beam_size=4, nbest=4, max_len=7)
  scores = np.asarray(result.scores)
  assert np.all(np.diff(scores, axis=1) <= 1e-6)
  for row in range(8):
    for rank in range(4):
      tokens, n = np.asarray(result.tokens[row, rank]), int(result.lengths[row, rank])
      assert EOS not in tokens[:n]
      assert n == 7 or tokens[n] == EOS


def test_output_limit_follows_source_length(small):
  model, params = small
  src = random_sources(8)
  result = _search(model, params, src, 0.6, 1.0, 1, beam_size=4, nbest=4, max_len=7)
  limit = np.minimum(np.asarray((src != 0).sum(1)) + 1, 7)
  # Tokens up to and including EOS never pass the limit.
  tokens = np.asarray(result.tokens)
  assert np.all((tokens != 0).sum(2) <= limit[:, None])
  past = np.broadcast_to(np.arange(7)[None, None, :] >= limit[:, None, None], tokens.shape)
  assert np.all(tokens[past] == 0)
  assert np.any(limit < 7)  # the limit was tested, not only the cap


def test_compiles_once_for_equal_shapes(small):
  model, params = small
  traces = []

  @functools.partial(jax.jit, static_argnames=("beam_size",))
  def search(params, src, beam_size):
    traces.append(src.shape)
    return beam_search.batch_beam_search(
      model, params, src, beam_search.Beam(beam_size=beam_size, max_len=7)
    )

  first = search(params, random_sources(4, seed=3), 2)
  second = search(params, random_sources(4, seed=4), 2)
  assert len(traces) == 1
  assert first.tokens.shape == second.tokens.shape == (4, 1, 7)
  assert first.attention.shape == (4, 1, 7, 5)
  search(params, random_sources(4, seed=5), 1)
  assert len(traces) == 2  # a new beam size is a new shape
