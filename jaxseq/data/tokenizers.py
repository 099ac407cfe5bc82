"""Subword tokenization with SentencePiece, interchangeable with vocab.WordVocab.

Both tokenizers reserve PAD=0, BOS=1, EOS=2, UNK=3, encode text without BOS/EOS, decode up to
the first EOS, and save to one JSON file whose "type" field names the class (see `load`).
SentencePiece runs with the identity normalization, no whitespace folding and byte fallback,
so decode(encode(s)) == s for any text (exact detokenization for BLEU), and training is
single-threaded and unshuffled, so it is deterministic.

References:
  Kudo & Richardson 2018, "SentencePiece: A simple and language independent subword tokenizer
  and detokenizer for Neural Text Processing". Sennrich et al. 2016 (BPE); Kudo 2018,
  "Subword Regularization: Improving Neural Network Translation Models with Multiple Subword
  Candidates" (the unigram model, and sampling its segmentations in training).
"""

import base64
import concurrent.futures
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Protocol, Self

import numpy as np
import sentencepiece as spm

from jaxseq.data import vocab
from jaxseq.data.vocab import BOS, EOS, PAD, UNK

MODEL_TYPES = ("bpe", "unigram")


class Tokenizer(Protocol):
  """What jaxseq needs of a tokenizer: both `vocab.WordVocab` and `SentencePieceTokenizer`
  offer it, and anything else that does can be saved with a run and loaded back."""

  @property
  def words(self) -> list[str]: ...  # the vocabulary, by id

  def __len__(self) -> int: ...
  def encode(self, sentence: str) -> list[int]: ...  # text -> ids, without BOS and EOS
  def decode(self, ids: Iterable[int]) -> str: ...  # ids -> text, up to the first EOS
  def save(self, path: str | os.PathLike): ...  # one JSON file; its "type" names the class

  @classmethod
  def load(cls, path: str | os.PathLike) -> Self: ...


class SentencePieceTokenizer:
  """A trained SentencePiece model; ids 0-3 are PAD, BOS, EOS, UNK."""

  def __init__(self, model_proto: bytes):
    self.model_proto = model_proto
    self.processor = spm.SentencePieceProcessor(model_proto=model_proto)
    reserved = (
      self.processor.pad_id(),
      self.processor.bos_id(),
      self.processor.eos_id(),
      self.processor.unk_id(),
    )
    if reserved != (PAD, BOS, EOS, UNK):
      raise ValueError(
        f"a SentencePiece model must reserve ids {(PAD, BOS, EOS, UNK)} for "
        f"pad, bos, eos, unk; this one has {reserved}"
      )

  @classmethod
  def train(
    cls, sentences: Iterable[str], vocab_size: int, model_type: str = "bpe"
  ) -> "SentencePieceTokenizer":
    """Trains on sentences (the training split only) with a fixed, deterministic setup."""
    if model_type not in MODEL_TYPES:
      raise ValueError(f"model_type {model_type!r}; allowed: {', '.join(MODEL_TYPES)}")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
      sentence_iterator=iter(list(sentences)),
      model_writer=model,
      vocab_size=vocab_size,
      model_type=model_type,
      pad_id=PAD,
      bos_id=BOS,
      eos_id=EOS,
      unk_id=UNK,
      pad_piece=vocab.SPECIALS[PAD],
      bos_piece=vocab.SPECIALS[BOS],
      eos_piece=vocab.SPECIALS[EOS],
      unk_piece=vocab.SPECIALS[UNK],
      normalization_rule_name="identity",
      remove_extra_whitespaces=False,
      byte_fallback=True,
      character_coverage=1.0,
      num_threads=1,
      input_sentence_size=0,
      shuffle_input_sentence=False,
      hard_vocab_limit=False,
      max_sentence_length=1 << 16,
      minloglevel=2,
    )
    return cls(model.getvalue())

  def __len__(self) -> int:
    return self.processor.get_piece_size()

  @property
  def words(self) -> list[str]:
    """Every piece by id (what a resumed run compares with the saved vocabulary)."""
    return [self.processor.id_to_piece(i) for i in range(len(self))]

  def encode(self, sentence: str) -> list[int]:
    """Piece ids, without BOS/EOS."""
    return self.processor.encode(sentence, out_type=int)

  def encode_sampled(
    self, sentence: str, rng: np.random.Generator, alpha: float, nbest: int
  ) -> list[int]:
    """One segmentation of the sentence drawn from its `nbest` most likely ones (a unigram
    model's), with probability proportional to P(segmentation) ** alpha: subword
    regularisation (Kudo 2018, Sec. 3.2). alpha -> 0 draws uniformly; a large alpha gives
    `encode`'s best segmentation."""
    nbests = self.processor.nbest_encode_as_proto(sentence, nbest_size=nbest).nbests
    if len(nbests) < 2:
      return self.encode(sentence)
    logits = alpha * np.array([candidate.score for candidate in nbests], np.float64)
    weights = np.exp(logits - logits.max())
    chosen = nbests[rng.choice(len(nbests), p=weights / weights.sum())]
    return [piece.id for piece in chosen.pieces]

  def decode(self, ids: Iterable[int]) -> str:
    """Text of the ids up to the first EOS; PAD, BOS and out-of-range ids are dropped."""
    return self.processor.decode([i for i in vocab.content_ids(ids) if 0 <= i < len(self)])

  def pieces(self, sentence: str) -> list[str]:
    """The pieces encode() yields, as text (for labels of attention plots)."""
    return self.processor.encode(sentence, out_type=str)

  def save(self, path: str | os.PathLike):
    with open(path, "w", encoding="utf-8") as f:
      json.dump(
        {"type": "sentencepiece", "model": base64.b64encode(self.model_proto).decode("ascii")}, f
      )

  @classmethod
  def load(cls, path: str | os.PathLike) -> "SentencePieceTokenizer":
    with open(path, encoding="utf-8") as f:
      return cls(base64.b64decode(json.load(f)["model"]))


# config.data.tokenizer -> the class; also the "type" field of a saved tokenizer's JSON.
def first_difference(a: Sequence[str], b: Sequence[str]) -> tuple[int, str, str] | None:
  """(id, a's entry, b's entry) where two vocabularies first differ, "<end>" standing for
  the entry past the shorter one's end; None when they are equal."""
  if list(a) == list(b):
    return None
  i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
  entry = lambda words: words[i] if i < len(words) else "<end>"
  return i, entry(a), entry(b)


TOKENIZERS: dict[str, type[Tokenizer]] = {
  "word": vocab.WordVocab,
  "sentencepiece": SentencePieceTokenizer,
}
# Tokenizer files in a workdir.
SRC_FILE, TGT_FILE = "src_vocab.json", "tgt_vocab.json"


def build(kind: str, sentences: list[str], vocab_size: int = 8000, model_type: str = "bpe"):
  """A tokenizer trained on sentences: kind "word" (WordVocab) or "sentencepiece"."""
  if kind not in TOKENIZERS:
    raise ValueError(f"tokenizer {kind!r}; allowed: {', '.join(TOKENIZERS)}")
  if kind == "word":
    return vocab.WordVocab.build(sentences)
  return SentencePieceTokenizer.train(sentences, vocab_size, model_type)


def load(path: str) -> Tokenizer:
  """The tokenizer saved at path (by its class's save); ValueError for an unknown type."""
  with open(path, encoding="utf-8") as f:
    kind = json.load(f).get("type")
  if kind not in TOKENIZERS:
    raise ValueError(f"{path}: unknown tokenizer type {kind!r}; allowed: {', '.join(TOKENIZERS)}")
  return TOKENIZERS[kind].load(path)


def save_pair(workdir: str, src, tgt):
  """Saves the source and target tokenizers of a run into its workdir."""
  src.save(os.path.join(workdir, SRC_FILE))
  tgt.save(os.path.join(workdir, TGT_FILE))


def load_pair(workdir: str):
  """(source, target) tokenizers saved in a workdir."""
  return load(os.path.join(workdir, SRC_FILE)), load(os.path.join(workdir, TGT_FILE))


SAMPLE_SEED = 0  # the tokenizers' sample does not change with config.seed: runs can ensemble


def training_sample(pairs: Sequence, limit: int, seed: int = SAMPLE_SEED) -> list:
  """The pairs tokenizers learn from: all of them, in order, when there are at most limit;
  else limit of them drawn without replacement (in corpus order), the same for the same
  seed and corpus size. Reads only those pairs (in one `take` where pairs has it)."""
  n = len(pairs)
  indices = (
    range(n)
    if n <= limit
    else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False)).tolist()
  )
  take = getattr(pairs, "take", None)
  return take(indices) if take else [pairs[i] for i in indices]


def build_or_load(
  kind: str, train_pairs: Sequence, workdir: str | None, *, max_pairs: int | None = None, **options
):
  """(source, target) tokenizers: those saved in workdir if any (resume, translation),
  else trained on the training pairs, at most max_pairs of them (`training_sample`)."""
  if workdir and all(os.path.isfile(os.path.join(workdir, f)) for f in (SRC_FILE, TGT_FILE)):
    return load_pair(workdir)
  sample = training_sample(train_pairs, max_pairs or len(train_pairs))
  # side by side: SentencePiece's trainer releases the GIL (each on one thread, so the
  # result is the same as one after the other)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    src, tgt = pool.map(
      lambda side: build(kind, [pair[side] for pair in sample], **options), (0, 1)
    )
  return src, tgt
