"""Beam search's coverage penalty: exact with beta = 0, and exact when the beam is exhaustive.

With beta = 0 the search must return what it returned before the penalty existed, bit for
bit: tests/reference_beam_search.py keeps that search, and both run on the same sentences
(with and without constraints). With beta > 0 an exhaustive beam must find the output that
maximises log P / lp + cp, scored here in numpy from the model's teacher-forced attention.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.decoding import beam_search, constraints
from tests import reference_beam_search
from tests.test_beam_search import (
  TGT_VOCAB,
  all_outputs,
  model_and_params,
  random_sources,
  teacher_forced_outputs,
  without_pad_output,
)

WORD = 4  # the one word of the target vocabulary


@functools.partial(jax.jit, static_argnames=("model", "module", "beam_size", "max_len"))
def _search(model, params, src, cons, alpha, beta, *, module, beam_size, max_len):
  """The batched search of `module` (the library's, or the reference copy) with the
  n-best list of the whole beam; alpha and the coverage penalty beta are traced."""
  fields = dict(beam_size=beam_size, nbest=beam_size, max_len=max_len, alpha=alpha)
  if module is beam_search:
    beam = beam_search.Beam(**fields, coverage_penalty=beta)
  else:
    beam = module.Beam(**fields)
  return module.batch_beam_search(model, params, src, beam, constraints=cons)


@pytest.mark.parametrize("constrained", [False, True])
def test_zero_penalty_returns_exactly_the_search_without_it(constrained):
  model, params = model_and_params(tgt_vocab=12, max_length=7)
  src = random_sources(12, seed=3)
  cons = None
  if constrained:  # a phrase of one or two tokens for most sentences, none for some
    rng = np.random.default_rng(0)
    phrases = [[list(rng.integers(4, 12, size=n))] if n else [] for n in rng.integers(0, 3, 12)]
    cons = jax.tree.map(jnp.asarray, constraints.stack(phrases, 2))
  run = functools.partial(_search, model, params, src, cons, 0.6, beam_size=3, max_len=7)
  new = run(jnp.float32(0.0), module=beam_search)
  old = run(0.0, module=reference_beam_search)
  for field in ("tokens", "lengths", "scores", "log_probs", "attention"):
    np.testing.assert_array_equal(getattr(new, field), getattr(old, field), err_msg=field)
  assert np.mean(np.asarray(new.scores[:, 0]) > beam_search.NEG_INF / 2) > 0.5  # real outputs
  # A penalty changes the scores of the same search (the comparison above could fail).
  penalised = run(jnp.float32(1.0), module=beam_search)
  assert not np.array_equal(penalised.scores, old.scores)


def _numpy_scores(model, params, src, outputs, alpha, beta):
  """log P / lp + cp of each output [n, len], from its teacher-forced log-probabilities
  and attention, in numpy."""
  log_p, lengths, attention, steps = teacher_forced_outputs(model, params, src, outputs)
  lp = ((5.0 + lengths) / 6.0) ** alpha
  coverage = (attention * steps[..., None]).sum(1)  # [n, src_len], the EOS step included
  real = np.asarray(src) != 0
  cp = beta * np.log(np.minimum(coverage[:, real], 1.0)).sum(1)
  return log_p / lp + cp


def test_exhaustive_beam_finds_the_best_penalised_output():
  limit = 3
  model, params = model_and_params(max_length=limit)
  params = without_pad_output(params)  # PAD is never an output of the table
  outputs = all_outputs(TGT_VOCAB, limit)
  beam = len(outputs)  # wider than every step's candidates: nothing is pruned
  sources = random_sources(4, seed=2)
  # The constrained search too: one sentence's phrase is the word, the others have none.
  with_word = np.array([WORD in row for row in outputs])
  cons = jax.tree.map(jnp.asarray, constraints.stack([[[WORD]], [], [[WORD]], []], 1))
  alpha, beta = 0.6, 2.0
  changed = 0
  for use_cons in (None, cons):
    result = _search(
      model,
      params,
      sources,
      use_cons,
      alpha,
      beta,
      module=beam_search,
      beam_size=beam,
      max_len=limit,
    )
    for row, src in enumerate(sources):
      scores = _numpy_scores(model, params, src, outputs, alpha, beta)
      plain = _numpy_scores(model, params, src, outputs, alpha, 0.0)
      allowed = with_word if use_cons is not None and row in (0, 2) else np.ones_like(with_word)
      scores, plain = np.where(allowed, scores, -np.inf), np.where(allowed, plain, -np.inf)
      order = np.argsort(-scores, kind="stable")
      changed += order[0] != np.argmax(plain)
      for rank in range(3):
        expected = outputs[order[rank]]
        n = int((expected != 0).sum())
        np.testing.assert_array_equal(result.tokens[row, rank, :n], expected[:n])
        np.testing.assert_allclose(result.scores[row, rank], scores[order[rank]], rtol=1e-4)
  # The penalty changed the best output of some sentence, so the test sees it at work.
  assert changed > 0


def test_coverage_penalty_ignores_padding_and_is_at_most_zero():
  real = jnp.array([True, True, False])
  full = beam_search.coverage_penalty(jnp.array([1.5, 1.0, 0.0]), real, 1.0)
  assert float(full) == 0.0  # every real token read at least once; padding's 0 not counted
  half = beam_search.coverage_penalty(jnp.array([0.5, 2.0, 0.0]), real, 0.4)
  np.testing.assert_allclose(float(half), 0.4 * np.log(0.5), rtol=1e-6)
  never = beam_search.coverage_penalty(jnp.array([0.0, 1.0, 0.0]), real, 1.0)
  assert np.isfinite(float(never)) and float(never) < -80
