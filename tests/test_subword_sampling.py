"""Subword regularisation: a unigram SentencePiece model's segmentations sampled per read,
reproducibly from the seed and the stream position, and resumed exactly."""

import os

import numpy as np
import pytest

from jaxseq.data import input_pipeline, tokenizers
from jaxseq.data.vocab import EOS, PAD
from jaxseq.errors import ConfigError
from jaxseq.training import configuration
from tests.conftest import subprocess_env

SHARED = subprocess_env()["JAXSEQ_DATA_DIR"]
BATCH, MAX_LENGTH = 8, 64


def _sentences() -> list[str]:
  path = os.path.join(SHARED, "multi30k", "train.de")
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      return [next(f).strip() for _ in range(600)]
  words = "ein hund läuft über die grüne wiese und zwei kinder spielen mit einem roten ball".split()
  rng = np.random.default_rng(0)
  return [" ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(600)]


@pytest.fixture(scope="module")
def unigram():
  return tokenizers.build("sentencepiece", _sentences(), vocab_size=400, model_type="unigram")


@pytest.fixture(scope="module")
def pairs():
  sentences = _sentences()
  return list(zip(sentences[:300], sentences[300:]))


def test_sampled_segmentations_decode_to_the_sentence_and_vary(unigram):
  sentence = _sentences()[0]
  best = unigram.encode(sentence)
  draws = [
    unigram.encode_sampled(sentence, np.random.default_rng(seed), 0.1, 8) for seed in range(20)
  ]
  assert all(unigram.decode(ids + [EOS]) == sentence for ids in draws)
  assert len({tuple(ids) for ids in draws}) > 2  # more than one segmentation is drawn
  again = unigram.encode_sampled(sentence, np.random.default_rng(3), 0.1, 8)
  assert again == draws[3]  # the generator alone decides the draw
  # a large alpha puts all the weight on the most likely segmentation: encode()'s
  assert unigram.encode_sampled(sentence, np.random.default_rng(0), 1e4, 8) == best


def _rows(batch) -> list[tuple]:
  return [tuple(row[row != PAD]) for row in batch["src"]]


def _stream(pairs, unigram, seed, sampling_seed=0, n=12):
  sampling = input_pipeline.SubwordSampling(0.1, 8, sampling_seed)
  examples = input_pipeline.EncodedPairs(pairs, unigram, unigram, sampling)
  it = input_pipeline.TrainIterator(examples, BATCH, MAX_LENGTH, seed=seed, num_threads=1)
  return it, [_rows(next(it)) for _ in range(n)]


def test_the_sampled_stream_is_fixed_by_the_seed_and_differs_from_the_best_segmentation(
  pairs, unigram
):
  _, first = _stream(pairs, unigram, seed=1)
  _, again = _stream(pairs, unigram, seed=1)
  assert first == again
  plain = input_pipeline.EncodedPairs(pairs, unigram, unigram)
  it = input_pipeline.TrainIterator(plain, BATCH, MAX_LENGTH, seed=1, num_threads=1)
  assert [_rows(next(it)) for _ in range(12)] != first
  _, other = _stream(pairs, unigram, seed=1, sampling_seed=5)
  assert other != first


def test_a_pair_read_again_in_another_epoch_is_segmented_anew(pairs, unigram):
  sampling = input_pipeline.SubwordSampling(0.1, 8, 0)
  examples = input_pipeline.EncodedPairs(pairs, unigram, unigram, sampling)
  first = examples.take([0, 1, 2, 3], [0, 1, 2, 3])
  later = examples.take([0, 1, 2, 3], [300, 301, 302, 303])
  assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, later))
  assert all(
    np.array_equal(a[0], b[0]) for a, b in zip(first, examples.take([0, 1, 2, 3], [0, 1, 2, 3]))
  )


def test_a_restored_sampled_stream_continues_exactly(pairs, unigram):
  it, _ = _stream(pairs, unigram, seed=2, n=5)
  state = it.get_state()
  rest = [_rows(next(it)) for _ in range(8)]
  restored, _ = _stream(pairs, unigram, seed=2, n=0)
  restored.set_state(state)
  assert [_rows(next(restored)) for _ in range(8)] == rest


def test_a_state_without_positions_resumes_unsampled_but_not_sampled(pairs, unigram):
  plain = input_pipeline.EncodedPairs(pairs, unigram, unigram)
  it = input_pipeline.TrainIterator(plain, BATCH, MAX_LENGTH, seed=0, num_threads=1)
  next(it)
  state = it.get_state()
  pending, buffers = state["grain"]["pending"], state["grain"]["buffers"]
  assert pending and all(len(key) == 2 for key in pending)  # [position, index]
  # the form saved before positions were kept: bare indices
  state["grain"]["pending"] = [index for _, index in pending]
  state["grain"]["buffers"] = [[index for _, index in buffer] for buffer in buffers]
  rest = [_rows(next(it)) for _ in range(3)]
  again = input_pipeline.TrainIterator(plain, BATCH, MAX_LENGTH, seed=0, num_threads=1)
  again.set_state(state)
  assert [_rows(next(again)) for _ in range(3)] == rest
  sampled, _ = _stream(pairs, unigram, seed=0, n=0)
  with pytest.raises(ValueError, match="without stream positions"):
    sampled.set_state(state)


@pytest.mark.parametrize(
  "overrides, expected",
  [
    ({"data": {"subword_alpha": 0.1, "spm_model_type": "bpe"}}, "spm_model_type=unigram"),
    ({"data": {"subword_alpha": 0.1, "tokenizer": "word"}}, "data.tokenizer=sentencepiece"),
    ({"data": {"subword_alpha": -0.1}}, "a number in [0.0, inf)"),
    ({"data": {"subword_nbest": 1}}, "an integer >= 2"),
    ({"data": {"subword_alpha": 0.1, "spm_model_type": "unigram"}}, "0 for dataset numbers"),
  ],
)
def test_sampling_settings_are_checked(overrides, expected):
  values = configuration.TrainConfig().to_dict()
  values["data"].update(overrides["data"])
  with pytest.raises(ConfigError, match="config.data.subword_") as raised:
    configuration.TrainConfig.from_dict(values)
  assert expected in str(raised.value)
