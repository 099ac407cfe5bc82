"""WMT'14 English-French and English-German through the TFDS catalogue (needs a network).

`wmt14_translate/fr-en` and `wmt14_translate/de-en` download tens of gigabytes of raw corpora
from statmt.org and other hosts before they can be prepared; offline, loading fails at once
with one DataError instead of waiting on timeouts.
"""

from tensorflow_datasets.translate import wmt14

from jaxseq.data.datasets import textfiles
from jaxseq.data.datasets.textfiles import DataError

PAIRS = ("fr-en", "de-en")
LANGUAGES = ("en", "fr", "de")  # the languages of PAIRS
HOST = "www.statmt.org"


def prepared_builder(pair: str, tfds_dir: str):
  """The builder of wmt14_translate/<pair>, its data prepared once in tfds_dir."""
  if pair not in PAIRS:
    raise DataError(f"WMT'14 pair {pair!r} is not available; allowed: {', '.join(PAIRS)}")
  name = f"wmt14_translate/{pair}"
  # the class, not tfds.builder(name): the catalogue's name lookup imports TensorFlow
  builder = wmt14.Wmt14Translate(config=pair, data_dir=tfds_dir, file_format="array_record")
  if not builder.is_prepared():
    if not textfiles.reachable(HOST):
      raise DataError(
        f"{name} is not prepared in {tfds_dir} and {HOST} cannot be reached: "
        "WMT'14 needs a network to download (use multi30k or tatoeba offline)"
      )
    builder.download_and_prepare()
  return builder
