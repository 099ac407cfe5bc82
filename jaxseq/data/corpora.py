"""Corpora by name: each gives text pairs per split and tokenizers built on train.

The training split is a random-access sequence read on demand (datasets.PairSource over
the prepared array_record files); the held-out and test splits are small and read whole.
"""

import collections
import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from jaxseq import fields
from jaxseq.data import datasets, synthetic, tokenizers
from jaxseq.data.datasets import (
  DataError,  # noqa: F401  (the error cli.py reports)
  multi30k,
  tatoeba,
  wmt14,
)
from jaxseq.data.vocab import WordVocab
from jaxseq.errors import ConfigError

TATOEBA_VARIANTS = tuple(c.name for c in tatoeba.TatoebaEngFra.BUILDER_CONFIGS)


@dataclasses.dataclass(frozen=True)
class DataConfig(fields.Config):
  """config.data: the fields of every corpus; which of them apply depends on config.dataset
  (the generated numbers read the first three, the real corpora the others)."""

  section: ClassVar[str] = "data"

  language: str = fields.field("de", "numbers: target language", fields.one_of(synthetic.LANGUAGES))
  num_train: int = fields.field(
    20_000, "numbers: training pairs (drawn with repetition)", fields.at_least(1)
  )
  num_eval: int = fields.field(
    1_000, "numbers: held-out pairs, disjoint from training", fields.at_least(1)
  )
  source_lang: str = fields.field("de", "corpora: translate from this side of the corpus")
  target_lang: str = fields.field("en", "corpora: into this side")
  tokenizer: str = fields.field(
    "sentencepiece", "corpora: trained on the training split", fields.one_of(tokenizers.TOKENIZERS)
  )
  tokenizer_pairs: int = fields.field(
    100_000,
    "corpora: tokenizers learn from at most this many training pairs (all of a "
    "smaller split, else a fixed sample)",
    fields.at_least(1),
  )
  vocab_size: int = fields.field(
    8000, "sentencepiece: pieces per language, ids 0-3 reserved", fields.at_least(300)
  )
  spm_model_type: str = fields.field(
    "bpe", "sentencepiece: model type", fields.one_of(tokenizers.MODEL_TYPES)
  )
  subword_alpha: float = fields.field(
    0.0,
    "sentencepiece unigram: subword regularisation, 0 = off; else every time a training "
    "pair is read, each side is segmented anew, one of its subword_nbest best segmentations "
    "drawn with probability proportional to P ** subword_alpha",
    fields.in_range(0.0),
  )
  subword_nbest: int = fields.field(
    8, "sentencepiece unigram: segmentations subword_alpha draws from", fields.at_least(2)
  )
  variant: str = fields.field(
    "tutorial", "tatoeba: tutorial (filtered, normalized) | full", fields.one_of(TATOEBA_VARIANTS)
  )
  pair: str = fields.field("fr-en", "wmt14: the wmt14_translate config", fields.one_of(wmt14.PAIRS))

  def check(self):
    if self.subword_alpha > 0 and (self.tokenizer, self.spm_model_type) != (
      "sentencepiece",
      "unigram",
    ):
      raise ConfigError(
        "data.subword_alpha",
        self.subword_alpha,
        "0 unless data.tokenizer=sentencepiece and data.spm_model_type=unigram "
        f"(here {self.tokenizer}, {self.spm_model_type})",
      )

  def check_for(self, dataset: str):
    """The rules that depend on config.dataset: a corpus' languages, WMT'14's pair, and
    subword sampling only where there are subwords."""
    if dataset not in LANGUAGES:
      if self.subword_alpha > 0:
        raise ConfigError("data.subword_alpha", self.subword_alpha, f"0 for dataset {dataset}")
      return
    langs = LANGUAGES[dataset]
    if self.source_lang not in langs:
      raise ConfigError("data.source_lang", self.source_lang, "one of " + ", ".join(langs))
    others = [x for x in langs if x != self.source_lang]
    if self.target_lang not in others:
      raise ConfigError("data.target_lang", self.target_lang, "one of " + ", ".join(others))
    if dataset == "wmt14" and {self.source_lang, self.target_lang} != set(self.pair.split("-")):
      raise ConfigError("data.pair", self.pair, "the pair of data.source_lang and data.target_lang")


@dataclasses.dataclass
class Corpus:
  """Text pairs per split, and the tokenizers that turn them into ids."""

  train: Sequence[tuple[str, str]]  # random access, read on demand (a list for numbers)
  eval: list[tuple[str, str]]  # the held-out split evaluated during and after training
  src_vocab: WordVocab  # or tokenizers.SentencePieceTokenizer (same interface)
  tgt_vocab: WordVocab
  exact_match: bool  # whether whole-sentence accuracy is meaningful here
  # every reference of eval[i]'s source (eval[i][1] is the first); None: one reference each
  eval_references: list[list[str]] | None = None
  test: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)  # named tests


def load_numbers(config, workdir: str | None = None) -> Corpus:
  del workdir  # a word vocabulary of the generated pairs is rebuilt identically
  splits = synthetic.make_splits(
    config.seed, config.data.num_train, config.data.num_eval, config.data.language
  )
  train = splits["train"]
  return Corpus(
    train=train,
    eval=splits["eval"],
    src_vocab=WordVocab.build(s for s, _ in train),
    tgt_vocab=WordVocab.build(t for _, t in train),
    exact_match=True,
  )


def _tokenizers(config, train, workdir):
  return tokenizers.build_or_load(
    config.data.tokenizer,
    train,
    workdir,
    max_pairs=config.data.tokenizer_pairs,
    **(
      {}
      if config.data.tokenizer == "word"
      else {"vocab_size": config.data.vocab_size, "model_type": config.data.spm_model_type}
    ),
  )


def load_multi30k(config, workdir: str | None = None) -> Corpus:
  """Multi30k in config.data.source_lang -> target_lang; eval = validation."""
  splits = datasets.multi30k_splits(config)
  src_vocab, tgt_vocab = _tokenizers(config, splits["train"], workdir)
  return Corpus(
    train=splits["train"],
    eval=splits["validation"],
    src_vocab=src_vocab,
    tgt_vocab=tgt_vocab,
    exact_match=False,
    test={name: splits[name] for name in ("test2016", "test2017")},
  )


def group_references(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[list[str]]]:
  """One (source, first reference) per distinct source, in first-seen order, and all
  references of each source."""
  references = collections.defaultdict(list)
  for src, tgt in pairs:
    references[src].append(tgt)
  return [(src, refs[0]) for src, refs in references.items()], list(references.values())


def load_tatoeba(config, workdir: str | None = None) -> Corpus:
  """Tatoeba French -> English (config.data.variant: tutorial | full); eval = held-out
  sources, each once, with all of their English references."""
  splits = datasets.tatoeba_splits(config)
  src_vocab, tgt_vocab = _tokenizers(config, splits["train"], workdir)
  eval_pairs, references = group_references(splits["validation"])
  return Corpus(
    train=splits["train"],
    eval=eval_pairs,
    src_vocab=src_vocab,
    tgt_vocab=tgt_vocab,
    exact_match=False,
    eval_references=references,
  )


def load_wmt14(config, workdir: str | None = None) -> Corpus:
  """WMT'14 (config.data.pair: fr-en | de-en) from the TFDS catalogue; needs a network."""
  splits = datasets.wmt14_splits(config)
  src_vocab, tgt_vocab = _tokenizers(config, splits["train"], workdir)
  return Corpus(
    train=splits["train"],
    eval=splits["validation"],
    src_vocab=src_vocab,
    tgt_vocab=tgt_vocab,
    exact_match=False,
    test={"newstest2014": splits["test"]},
  )


# config.dataset -> its loader; for the real corpora also the languages that
# config.data.source_lang and target_lang take.
LANGUAGES = {"multi30k": multi30k.LANGUAGES, "tatoeba": tatoeba.LANGUAGES, "wmt14": wmt14.LANGUAGES}
LOADERS = {
  "numbers": load_numbers,
  "multi30k": load_multi30k,
  "tatoeba": load_tatoeba,
  "wmt14": load_wmt14,
}


def load_corpus(config, workdir: str | None = None) -> Corpus:
  """The corpus config.dataset names; tokenizers saved in workdir are reused."""
  return LOADERS[config.dataset](config, workdir)


def target_language(config) -> str:
  """The language code of the translations (the generated numbers: config.data.language)."""
  return config.data.language if config.dataset == "numbers" else config.data.target_lang
