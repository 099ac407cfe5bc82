"""Corpora by name: each gives text pairs per split and vocabularies built on train."""

import dataclasses

from jaxseq import synthetic
from jaxseq.vocab import WordVocab


@dataclasses.dataclass
class Corpus:
  """Text pairs per split, and the tokenizers that turn them into ids."""
  train: list[tuple[str, str]]
  eval: list[tuple[str, str]]   # the held-out split evaluated during and after training
  src_vocab: WordVocab
  tgt_vocab: WordVocab
  exact_match: bool             # whether whole-sentence accuracy is meaningful here


def load_numbers(config) -> Corpus:
  splits = synthetic.make_splits(config.seed, config.data.num_train, config.data.num_eval,
                                 config.data.language)
  train = splits["train"]
  return Corpus(train=train, eval=splits["eval"],
                src_vocab=WordVocab.build(s for s, _ in train),
                tgt_vocab=WordVocab.build(t for _, t in train), exact_match=True)


LOADERS = {"numbers": load_numbers}


def load_corpus(config) -> Corpus:
  return LOADERS[config.dataset](config)
