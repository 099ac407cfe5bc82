"""TFDS builder for Multi30k (WMT16 multimodal task 1), English-German.

References:
  Elliott et al. 2016, "Multi30K: Multilingual English-German Image Descriptions".
"""

import os

import tensorflow_datasets as tfds
from etils import epath

from jaxseq.data.datasets import textfiles

RAW_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
# split name -> file stem in the local layout (multi30k/<stem>.<lang>) and in the official
# repository
SPLITS = {
  "train": ("train", "train"),
  "validation": ("val", "val"),
  "test2016": ("test2016", "test_2016_flickr"),
  "test2017": ("test2017", "test_2017_flickr"),
}
LANGUAGES = ("de", "en")


def local_files(raw_dir: str) -> dict[str, dict[str, str]]:
  """{split: {language: path}} in the local layout; the cache key hashes the same files."""
  return {
    split: {lang: os.path.join(raw_dir, f"{stem}.{lang}") for lang in LANGUAGES}
    for split, (stem, _) in SPLITS.items()
  }


class Multi30k(tfds.core.GeneratorBasedBuilder):
  """Raw (cased, untokenized) German-English image captions: 29,000 / 1,014 / 1,000 / 1,000.

  `raw_dir` is a local directory with train.de, train.en, val.*, test2016.*, test2017.*;
  when it lacks them, the gzipped originals are downloaded from the official repository.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "WMT16 task 1 raw files, train/val/test2016/test2017."}
  code_path = epath.Path(__file__)  # the builder's own file, named for tfds

  def __init__(self, *, raw_dir: str | None = None, **kwargs):
    self.raw_dir = raw_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,  # keep file order, so outputs line up with the raw files
      features=tfds.features.FeaturesDict({lang: tfds.features.Text() for lang in LANGUAGES}),
      supervised_keys=("de", "en"),
      homepage="https://github.com/multi30k/dataset",
    )

  def _local_files(self) -> dict | None:
    if not self.raw_dir:
      return None
    files = local_files(self.raw_dir)
    present = [os.path.isfile(p) for langs in files.values() for p in langs.values()]
    if any(present) and not all(present):
      missing = [p for langs in files.values() for p in langs.values() if not os.path.isfile(p)]
      raise textfiles.DataError(
        f"{missing[0]}: file is missing ({len(missing)} of the {len(present)} Multi30k files are)"
      )
    return files if all(present) else None

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    files = self._local_files()
    if files is None:  # needs a network: the official gzipped raw files
      urls = {
        f"{split}.{lang}": f"{RAW_URL}{remote}.{lang}.gz"
        for split, (_, remote) in SPLITS.items()
        for lang in LANGUAGES
      }
      paths = textfiles.download(dl_manager, urls, os.path.join(self.raw_dir or "", "train.de"))
      files = {
        split: {lang: os.fspath(paths[f"{split}.{lang}"]) for lang in LANGUAGES} for split in SPLITS
      }
    return {split: self._generate_examples(langs) for split, langs in files.items()}

  def _generate_examples(self, langs: dict):
    pairs = textfiles.iter_parallel(langs["de"], langs["en"])
    for index, (de, en) in enumerate(pairs):
      yield index, {"de": de, "en": en}
