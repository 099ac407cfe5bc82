"""TFDS builder for Tatoeba English-French (the manythings.org Anki export), fra -> eng.

Configs:
  full      every pair, text as in the file.
  tutorial  the PyTorch "NLP From Scratch: Translation with a Sequence to Sequence Network and
            Attention" tutorial's recipe: unicode to ASCII, lowercase, `.!?` split off, other
            non-letters removed, both sides shorter than 10 words, English side starting with
            one of ENGLISH_PREFIXES.

Splits: `train`, and `validation` held out by source sentence: a French sentence is held out
with all of its English references (for multi-reference BLEU), and no held-out French sentence
occurs in `train`. Which sources are held out depends only on their text (a hash), so it does
not change with file order.
"""

import hashlib
import os
import re
import unicodedata

import tensorflow_datasets as tfds
from etils import epath

from jaxseq.data.datasets import textfiles

DOWNLOAD_URL = "https://www.manythings.org/anki/fra-eng.zip"  # member fra.txt: English<TAB>French
LOCAL_FILE = "eng-fra.txt"
LANGUAGES = ("fra", "eng")  # the features of every example
MAX_WORDS = 10  # tutorial: both sides strictly shorter than this many words
# The tutorial's prefixes, spaces included as it writes them (so "i m " but "he is").
ENGLISH_PREFIXES = (
  "i am ",
  "i m ",
  "he is",
  "he s ",
  "she is",
  "she s ",
  "you are",
  "you re ",
  "we are",
  "we re ",
  "they are",
  "they re ",
)


def unicode_to_ascii(text: str) -> str:
  """Drops combining marks after NFD decomposition: "é" -> "e"."""
  return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def normalize(text: str) -> str:
  """The tutorial's normalizeString: ASCII, lowercase, ".!?" split off, other non-letters gone."""
  text = unicode_to_ascii(text.lower().strip())
  text = re.sub(r"([.!?])", r" \1", text)
  text = re.sub(r"[^a-zA-Z.!?]+", r" ", text)
  return text.strip()


def keep_tutorial_pair(fra: str, eng: str) -> bool:
  """The tutorial's filterPair on normalized text."""
  return (
    len(fra.split(" ")) < MAX_WORDS
    and len(eng.split(" ")) < MAX_WORDS
    and eng.startswith(ENGLISH_PREFIXES)
  )


def is_heldout(source: str, percent: int) -> bool:
  """Whether a source sentence belongs to the held-out split (a stable hash of its text)."""
  digest = hashlib.sha256(source.encode("utf-8")).digest()
  return int.from_bytes(digest[:4], "big") % 100 < percent


def tutorial_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
  """(fra, eng) pairs the tutorial keeps, normalized, from (eng, fra) file pairs."""
  kept = []
  for eng, fra in pairs:
    fra, eng = normalize(fra), normalize(eng)
    if fra and eng and keep_tutorial_pair(fra, eng):
      kept.append((fra, eng))
  return kept


class TatoebaEngFraConfig(tfds.core.BuilderConfig):
  """Which pairs to keep, and the share of source sentences held out."""

  def __init__(self, *, tutorial: bool, heldout_percent: int, **kwargs):
    super().__init__(**kwargs)
    self.tutorial, self.heldout_percent = tutorial, heldout_percent


class TatoebaEngFra(tfds.core.GeneratorBasedBuilder):
  """French -> English sentence pairs from Tatoeba (CC-BY 2.0; manythings.org/anki, tatoeba.org).

  `raw_dir` is a local directory holding eng-fra.txt (English<TAB>French per line); without
  it, the zip is downloaded from manythings.org.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "full and tutorial configs, held-out split grouped by source."}
  BUILDER_CONFIGS = [
    TatoebaEngFraConfig(
      name="full",
      tutorial=False,
      heldout_percent=2,
      description="every pair, text unchanged; 2% of sources held out",
    ),
    TatoebaEngFraConfig(
      name="tutorial",
      tutorial=True,
      heldout_percent=10,
      description="the tutorial's normalization and filter; 10% held out",
    ),
  ]
  code_path = epath.Path(__file__)  # the builder's own file, named for tfds

  def __init__(self, *, raw_dir: str | None = None, **kwargs):
    self.raw_dir = raw_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,  # keep file order, so outputs line up with the raw files
      features=tfds.features.FeaturesDict({lang: tfds.features.Text() for lang in LANGUAGES}),
      supervised_keys=LANGUAGES,
      homepage="https://www.manythings.org/anki/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    path = os.path.join(self.raw_dir, LOCAL_FILE) if self.raw_dir else ""
    if not os.path.isfile(path):  # needs a network
      extracted = textfiles.download(dl_manager, DOWNLOAD_URL, path or LOCAL_FILE)
      path = os.path.join(os.fspath(extracted), "fra.txt")
    pairs = [(fra, eng) for eng, fra in textfiles.read_tab_pairs(path)]
    if self.builder_config.tutorial:
      pairs = tutorial_pairs([(eng, fra) for fra, eng in pairs])
    percent = self.builder_config.heldout_percent
    heldout = [is_heldout(fra, percent) for fra, _ in pairs]
    splits = {
      "train": [p for p, h in zip(pairs, heldout) if not h],
      "validation": [p for p, h in zip(pairs, heldout) if h],
    }
    for name, split in splits.items():
      if not split:
        raise textfiles.DataError(
          f"{path}: {len(pairs)} pairs kept by config {self.builder_config.name!r} leave the "
          f"{name} split empty; the file is too small"
        )
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, pairs: list[tuple[str, str]]):
    for index, (fra, eng) in enumerate(pairs):
      yield index, {"fra": fra, "eng": eng}
