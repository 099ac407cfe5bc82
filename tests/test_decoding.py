"""Ensembles, sampling and forced prefixes, on two small models trained here.

The two models share an architecture and the number-words corpus, and differ in their
initialisation and data order (two seeds): the usual ensemble. They are trained for a few
hundred updates, enough to translate held-out numbers partly right, so that an ensemble,
a sample and a prefix have something to change.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxseq.data import input_pipeline, synthetic
from jaxseq.data.vocab import BOS, EOS, PAD, WordVocab
from jaxseq.decoding import beam_search, decode, ensemble, evaluation
from jaxseq.decoding.options import DecodeOptions
from jaxseq.model import seq2seq
from jaxseq.training import steps

MAX_LENGTH = 16
SETTINGS = dict(default.get_config().decode.to_dict(), temperature=1.0, top_k=0, top_p=1.0, seed=0)


@pytest.fixture(scope="module")
def trained():
  """(model, [params of seed 1, params of seed 2], held-out pairs, src_vocab, tgt_vocab)."""
  splits = synthetic.make_splits(0, 1500, 40, "de")
  src_vocab = WordVocab.build(s for s, _ in splits["train"])
  tgt_vocab = WordVocab.build(t for _, t in splits["train"])
  examples, _ = input_pipeline.encode_pairs(splits["train"], src_vocab, tgt_vocab, MAX_LENGTH)
  fields = default.get_model_config()
  fields.update(
    embed_size=16,
    hidden_size=24,
    attention_size=16,
    bidirectional=False,
    max_length=MAX_LENGTH,
    dropout=0.0,
  )
  model = seq2seq.from_config(fields, len(src_vocab), len(tgt_vocab))
  config = default.get_config()
  config.update(
    dict(
      learning_rate=1e-2,
      lr_schedule="constant",
      warmup_steps=0,
      grad_clip_norm=1.0,
      num_train_steps=100,
    )
  )
  step = jax.jit(
    functools.partial(steps.train_step, model=model, teacher_forcing_ratio=1.0, label_smoothing=0.0)
  )
  params = []
  for seed in (1, 2):
    state = steps.create_train_state(model, config, jax.random.key(seed))
    state = state.replace(step=jnp.asarray(state.step, jnp.int32))
    batches = input_pipeline.TrainIterator(examples, 32, MAX_LENGTH, seed=seed)
    for _ in range(config.num_train_steps):
      state, _ = step(state, next(batches))
    params.append(state.params)
  return model, params, splits["eval"], src_vocab, tgt_vocab


def _sources(pairs, src_vocab, count=None):
  return [np.asarray(src_vocab.encode(s), np.int32) for s, _ in pairs[:count]]


def _translate(model, params, sources, search, nbest=1, prefixes=None, batch_size=16, **settings):
  options = DecodeOptions.from_dict(
    {**SETTINGS, **settings, "search": search, "nbest": nbest}, strict=False
  )
  searcher = evaluation.Searcher(model, params, MAX_LENGTH, batch_size)
  return evaluation.translate_ids(searcher, sources, options, prefixes=prefixes)


def _texts(outputs, tgt_vocab):
  return [tgt_vocab.decode(o.best.ids) for o in outputs]


def _heldout_nll(model, params, pairs, src_vocab, tgt_vocab) -> float:
  """Mean per-token NLL of the references (the ensemble's when model is a tuple)."""
  examples, _ = input_pipeline.encode_pairs(pairs, src_vocab, tgt_vocab, MAX_LENGTH)
  return evaluation.heldout_loss(model, params, examples, 64, MAX_LENGTH)["loss"]


def test_an_ensemble_of_one_is_the_model_alone(trained):
  model, (params, _), pairs, src_vocab, _ = trained
  sources = _sources(pairs, src_vocab, 16)
  for search in ("greedy", "beam"):
    alone = _translate(model, params, sources, search, nbest=2 if search == "beam" else 1)
    one = _translate((model,), (params,), sources, search, nbest=2 if search == "beam" else 1)
    for a, b in zip(alone, one):
      assert [h.ids for h in a.nbest] == [h.ids for h in b.nbest]
      np.testing.assert_array_equal([h.score for h in a.nbest], [h.score for h in b.nbest])
      np.testing.assert_array_equal(a.best.attention, b.best.attention)


def test_an_ensemble_of_two_beats_the_worse_member(trained):
  model, params, pairs, src_vocab, tgt_vocab = trained
  members = [(model, p) for p in params]
  pair = ((model, model), tuple(params))
  # Held-out NLL: the renormalised mean of log-probabilities is at least the members' mean
  # log-probability at every token, so its NLL is at most their mean NLL.
  nll = [_heldout_nll(m, p, pairs, src_vocab, tgt_vocab) for m, p in members]
  assert nll[0] != nll[1]  # two different models
  # The ensemble path of one model (a scan over the step) scores as the model's own.
  assert _heldout_nll((model,), params[:1], pairs, src_vocab, tgt_vocab) == pytest.approx(
    nll[0], rel=1e-5
  )
  assert _heldout_nll(*pair, pairs, src_vocab, tgt_vocab) <= np.mean(nll) + 1e-5
  references = [[t] for _, t in pairs]
  sources = _sources(pairs, src_vocab)
  bleu = lambda m, p: evaluation.text_metrics(
    _texts(_translate(m, p, sources, "beam"), tgt_vocab), references, False
  )["bleu"]
  scores = [bleu(m, p) for m, p in members]
  assert min(scores) < 100  # the members still make mistakes for the ensemble to fix
  assert bleu(*pair) >= min(scores)


def test_forced_prefix_starts_every_output_and_counts_in_the_score(trained):
  model, (params, _), pairs, src_vocab, tgt_vocab = trained
  sources = _sources(pairs, src_vocab, 6)
  prefix = tgt_vocab.encode("neun hundert")
  prefixes = [prefix if i % 2 == 0 else [] for i in range(len(sources))]
  free = _translate(model, params, sources, "greedy")
  for search in ("greedy", "beam", "sample"):
    outputs = _translate(model, params, sources, search, nbest=2, prefixes=prefixes)
    for i, out in enumerate(outputs):
      for h in out.nbest:
        assert h.ids[: len(prefixes[i])] == prefixes[i]
      if search == "greedy" and not prefixes[i]:
        assert out.best.ids == free[i].best.ids  # rows without a prefix are untouched
  # The score is log P of the whole output, prefix tokens included (teacher forced).
  outputs = _translate(model, params, sources, "greedy", prefixes=prefixes)
  for src, out in zip(sources, outputs):
    ids = out.best.ids + ([EOS] if out.best.ended else [])
    tgt_in = jnp.asarray([BOS] + ids[:-1], jnp.int32)
    log_probs = ensemble.teacher_forced_log_probs((model,), (params,), jnp.asarray(src), tgt_in)
    expected = float(jnp.sum(log_probs[jnp.arange(len(ids)), jnp.asarray(ids)]))
    assert out.best.score == pytest.approx(expected, abs=1e-4)


def test_temperature_zero_and_top_k_one_are_greedy(trained):
  model, (params, _), pairs, src_vocab, _ = trained
  sources = _sources(pairs, src_vocab, 16)
  greedy = _translate(model, params, sources, "greedy")
  for settings in ({"temperature": 0.0}, {"top_k": 1}, {"top_k": 1, "temperature": 5.0}):
    sampled = _translate(model, params, sources, "sample", **settings)
    assert [o.best.ids for o in sampled] == [o.best.ids for o in greedy], settings
    np.testing.assert_allclose(
      [o.best.score for o in sampled], [o.best.score for o in greedy], atol=1e-5
    )


def test_sampling_is_fixed_by_the_seed_and_draws_nbest(trained):
  model, (params, _), pairs, src_vocab, _ = trained
  sources = _sources(pairs, src_vocab, 12)
  draw = lambda seed, batch_size=16: _translate(
    model, params, sources, "sample", nbest=4, seed=seed, temperature=1.5, batch_size=batch_size
  )
  first, again, other = draw(3), draw(3), draw(4)
  ids = lambda outputs: [[h.ids for h in o.nbest] for o in outputs]
  assert ids(first) == ids(again)
  assert ids(first) != ids(other)
  # A sentence's draws do not depend on the rest of its batch.
  assert ids(draw(3, batch_size=5)) == ids(first)
  for out in first:
    scores = [h.score for h in out.nbest]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
  assert any(len({tuple(h.ids) for h in o.nbest}) > 1 for o in first)  # diverse draws


def test_sampling_distribution_keeps_top_k_and_the_nucleus():
  log_probs = jnp.log(jnp.asarray([0.05, 0.5, 0.1, 0.3, 0.05]))
  keep = lambda t, k, p: np.isfinite(np.asarray(decode.sampling_log_probs(log_probs, t, k, p)))
  np.testing.assert_array_equal(keep(1.0, 0, 1.0), [True] * 5)
  np.testing.assert_array_equal(keep(1.0, 2, 1.0), [False, True, False, True, False])
  # The smallest most-likely-first set reaching 0.75: 0.5 + 0.3.
  np.testing.assert_array_equal(keep(1.0, 0, 0.75), [False, True, False, True, False])
  np.testing.assert_array_equal(keep(1.0, 0, 0.85), [False, True, True, True, False])
  np.testing.assert_array_equal(keep(1.0, 0, 0.1), [False, True, False, False, False])
  kept = np.exp(np.asarray(decode.sampling_log_probs(log_probs, 1.0, 0, 0.85)))
  np.testing.assert_allclose(kept.sum(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(kept[[1, 2, 3]], np.array([0.5, 0.1, 0.3]) / 0.9, rtol=1e-5)
  # A high temperature flattens: the least likely tokens gain.
  hot = np.exp(np.asarray(decode.sampling_log_probs(log_probs, 10.0, 0, 1.0)))
  assert hot[0] > 0.15
  # Draws follow the kept distribution.
  draws = jax.vmap(
    lambda k: jax.random.categorical(k, decode.sampling_log_probs(log_probs, 1.0, 2, 1.0))
  )(jax.random.split(jax.random.key(0), 4000))
  share = np.bincount(np.asarray(draws), minlength=5) / 4000
  np.testing.assert_allclose(share, [0, 0.625, 0, 0.375, 0], atol=0.03)


def test_beam_search_with_a_prefix_keeps_its_fixed_shapes(trained):
  model, (params, _), pairs, src_vocab, tgt_vocab = trained
  src = jnp.asarray(
    np.stack([np.pad(s, (0, MAX_LENGTH - len(s))) for s in _sources(pairs, src_vocab, 4)])
  )
  prefix = jnp.asarray([tgt_vocab.encode("drei")[0], PAD], jnp.int32)[None].repeat(4, 0)
  result = beam_search.batch_beam_search(
    model, params, src, beam_search.Beam(beam_size=3, nbest=3, max_len=MAX_LENGTH), prefix
  )
  assert result.tokens.shape == (4, 3, MAX_LENGTH)
  assert result.attention.shape == (4, 3, MAX_LENGTH, MAX_LENGTH)
  np.testing.assert_array_equal(result.tokens[:, :, 0], prefix[0, 0])
