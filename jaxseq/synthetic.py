"""The embedded corpus: English number words translated into German or French.

Built in-process by num2words, with no files and no network. The task needs
attention: German names units before tens ("seven hundred and forty-two" ->
"sieben hundert zwei und vierzig"), and French counts seventies and nineties in
twenties ("ninety-seven" -> "quatre vingt dix sept"). German writes a number as one
word, so it is split into its number morphemes here to give a word-level target.
"""

import re

import numpy as np
from num2words import num2words

LANGUAGES = ("de", "fr")
MAX_NUMBER = 999_999

# Every morpheme of a German number word below a million. Longest match first
# segments them uniquely ("sechzehn" is not "sechs"+"zehn").
_GERMAN_MORPHEMES = sorted([
    "null", "eins", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht",
    "neun", "zehn", "elf", "zwölf", "sechzehn", "siebzehn", "zwanzig", "dreißig",
    "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig", "hundert",
    "tausend", "und"], key=len, reverse=True)


def split_german(word: str) -> list[str]:
  """'siebenhundertzweiundvierzig' -> ['sieben', 'hundert', 'zwei', 'und', 'vierzig']."""
  parts, i = [], 0
  while i < len(word):
    for m in _GERMAN_MORPHEMES:
      if word.startswith(m, i):
        parts.append(m)
        i += len(m)
        break
    else:
      raise ValueError(f"cannot split German number word {word!r} at position {i}")
  return parts


def _words(text: str) -> list[str]:
  return [w for w in re.split(r"[\s,\-]+", text) if w]


def render(n: int, lang: str) -> tuple[str, str]:
  """(English words, target-language words) for n, space-separated, lowercase."""
  if lang not in LANGUAGES:
    raise ValueError(f"unknown language {lang!r}; allowed: {', '.join(LANGUAGES)}")
  source = _words(num2words(n, lang="en"))
  if lang == "de":
    target = [m for w in _words(num2words(n, lang="de")) for m in split_german(w)]
  else:
    target = _words(num2words(n, lang="fr"))
  return " ".join(source), " ".join(target)


def sample_numbers(rng: np.random.Generator, count: int) -> list[int]:
  """`count` distinct numbers whose digit count is uniform over 1..6, in draw order."""
  seen: dict[int, None] = {}  # insertion-ordered set
  while len(seen) < count:
    digits = rng.integers(1, 7, size=count)
    lo = np.where(digits == 1, 0, 10 ** (digits - 1))
    for x in rng.integers(lo, 10 ** digits):
      seen.setdefault(int(x))
      if len(seen) == count:
        break
  return list(seen)


def make_splits(seed: int, num_train: int, num_eval: int, lang: str
                ) -> dict[str, list[tuple[str, str]]]:
  """Disjoint train and held-out sets of (source, target) pairs, fixed by seed."""
  if num_train + num_eval > MAX_NUMBER + 1:
    raise ValueError(f"at most {MAX_NUMBER + 1} distinct numbers exist")
  rng = np.random.default_rng(seed)
  pairs = [render(n, lang) for n in sample_numbers(rng, num_train + num_eval)]
  return {"train": pairs[:num_train], "eval": pairs[num_train:]}
