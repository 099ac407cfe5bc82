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
_GERMAN_MORPHEMES = sorted(
  [
    "null",
    "eins",
    "ein",
    "zwei",
    "drei",
    "vier",
    "fünf",
    "sechs",
    "sieben",
    "acht",
    "neun",
    "zehn",
    "elf",
    "zwölf",
    "sechzehn",
    "siebzehn",
    "zwanzig",
    "dreißig",
    "vierzig",
    "fünfzig",
    "sechzig",
    "siebzig",
    "achtzig",
    "neunzig",
    "hundert",
    "tausend",
    "und",
  ],
  key=len,
  reverse=True,
)


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


def _draw(rng: np.random.Generator, count: int, min_digits: int) -> np.ndarray:
  """count numbers whose digit count is uniform over min_digits..6."""
  digits = rng.integers(min_digits, 7, size=count)
  low = np.where(digits == 1, 0, 10 ** (digits - 1))
  return rng.integers(low, 10**digits)


def make_splits(
  seed: int, num_train: int, num_eval: int, lang: str
) -> dict[str, list[tuple[str, str]]]:
  """Train and held-out (source, target) pairs, fixed by seed, sharing no number.

  Held-out: num_eval distinct numbers of 3 to 6 digits. Train: num_train draws, with
  repetition, whose digit count is uniform over 1..6, so every number below 100 (the
  building blocks) is seen many times; no held-out number is ever drawn.
  """
  if num_eval > (MAX_NUMBER + 1) // 2:
    raise ValueError(f"at most {(MAX_NUMBER + 1) // 2} held-out numbers")
  rng = np.random.default_rng(seed)
  held: dict[int, None] = {}  # insertion-ordered set
  while len(held) < num_eval:
    for n in _draw(rng, num_eval, min_digits=3):
      if len(held) < num_eval:
        held.setdefault(int(n))
  train: list[int] = []
  while len(train) < num_train:
    train.extend(int(n) for n in _draw(rng, num_train, min_digits=1) if int(n) not in held)
  rendered: dict[int, tuple[str, str]] = {}

  def pair(n: int) -> tuple[str, str]:
    if n not in rendered:
      rendered[n] = render(n, lang)
    return rendered[n]

  return {"train": [pair(n) for n in train[:num_train]], "eval": [pair(n) for n in held]}
