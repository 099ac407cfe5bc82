"""Constraint phrases as text -> the target token ids the constrained search takes.

A phrase is encoded as it appears inside a sentence, after a space. With SentencePiece
that matters: a word's first piece carries the word-start mark "▁" (a leading space), so
"bicycle" inside "a red bicycle" is the pieces of " bicycle" ("▁bi", "cycle", say), not of
"bicycle" glued to the word before. A SentencePiece model trained with its default
dummy prefix encodes "bicycle" that way already (the first word of a sentence gets the
mark too, so the phrase matches at the start of an output as well); for one without it,
the phrase is encoded with a space in front. So a phrase is met by whole words at a word
start, and the last word may go on ("bicycle" is met by "bicycles"); a phrase inside a
word ("cycle" in "bicycle") is not. A word vocabulary takes the phrase word by word.

Imports no JAX: the commands check phrases before the model libraries load.
"""

from collections.abc import Sequence

from jaxseq.data.tokenizers import SentencePieceTokenizer, Tokenizer
from jaxseq.data.vocab import UNK

WORD_START = "\u2581"  # SentencePiece's mark of a word start


def phrase_ids(tokenizer: Tokenizer, phrase: str) -> list[int]:
  """The target ids of one phrase as it appears inside a sentence (see the module's
  docstring); ValueError (one line) for an empty phrase or one that the target
  vocabulary cannot write (a word it does not hold, or text that does not come back)."""
  text = phrase.strip()
  if not text:
    raise ValueError(f"the constraint {phrase!r} is empty; give a word or words")
  ids = tokenizer.encode(text)
  if (
    isinstance(tokenizer, SentencePieceTokenizer)
    and ids
    and not tokenizer.pieces(text)[0].startswith(WORD_START)
  ):
    ids = tokenizer.encode(" " + text)  # a model without the dummy prefix
  if not ids or UNK in ids or tokenizer.decode(ids).split() != text.split():
    unknown = [w for w in text.split() if UNK in tokenizer.encode(w)]
    raise ValueError(
      f"the constraint {text!r} cannot be written with the target vocabulary"
      + (f" ({unknown[0]!r} is not in it)" if unknown else "")
      + "; use words the model knows"
    )
  return ids


def constraint_ids(tokenizer: Tokenizer, phrases: Sequence[str], most: int) -> list[list[int]]:
  """The target ids of one sentence's phrases (see `phrase_ids`); ValueError when they
  hold more than `most` tokens in all (0: the translator takes no constraints)."""
  ids = [phrase_ids(tokenizer, p) for p in phrases]
  total = sum(len(p) for p in ids)
  if ids and not most:
    raise ValueError("this translator takes no constraints (exported without them)")
  if total > most:
    raise ValueError(f"the constraints hold {total} target tokens; at most {most} are allowed")
  return ids


def contains(ids: Sequence[int], phrase: Sequence[int]) -> bool:
  """Whether the token ids hold the phrase's ids, one after another."""
  n = len(phrase)
  return any(list(ids[i : i + n]) == list(phrase) for i in range(len(ids) - n + 1))
