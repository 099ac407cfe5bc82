"""Word-level vocabulary with the reserved ids every tokenizer in jaxseq shares."""

import collections
import json
import os
from collections.abc import Iterable, Sequence

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


def content_ids(ids: Iterable[int]) -> list[int]:
  """The ids before the first EOS, without PAD and BOS: what a tokenizer turns into text."""
  kept = []
  for i in map(int, ids):
    if i == EOS:
      break
    if i not in (PAD, BOS):
      kept.append(i)
  return kept


class WordVocab:
  """Maps whitespace-separated words to ids; ids 0-3 are PAD, BOS, EOS, UNK."""

  def __init__(self, words: Sequence[str]):
    if tuple(words[: len(SPECIALS)]) != SPECIALS:
      raise ValueError(f"a vocabulary must start with {SPECIALS}")
    if len(set(words)) != len(words):
      raise ValueError("a vocabulary must not repeat a word")
    self.words = list(words)
    self.index = {w: i for i, w in enumerate(self.words)}

  @classmethod
  def build(cls, sentences: Iterable[str], min_count: int = 1) -> "WordVocab":
    """Words seen at least min_count times, most frequent first (ties by spelling)."""
    counts = collections.Counter(w for s in sentences for w in s.split())
    kept = sorted(
      (w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
      key=lambda w: (-counts[w], w),
    )
    return cls(list(SPECIALS) + kept)

  def __len__(self) -> int:
    return len(self.words)

  def encode(self, sentence: str) -> list[int]:
    """Word ids, without BOS/EOS; unknown words become UNK."""
    return [self.index.get(w, UNK) for w in sentence.split()]

  def decode(self, ids: Iterable[int]) -> str:
    """Text of the ids up to the first EOS; PAD and BOS are dropped."""
    return " ".join(
      self.words[i] if 0 <= i < len(self.words) else SPECIALS[UNK] for i in content_ids(ids)
    )

  def save(self, path: str | os.PathLike):
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"type": "word", "words": self.words}, f, ensure_ascii=False)

  @classmethod
  def load(cls, path: str | os.PathLike) -> "WordVocab":
    with open(path, encoding="utf-8") as f:
      return cls(json.load(f)["words"])
