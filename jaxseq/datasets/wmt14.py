"""WMT'14 English-French and English-German through the TFDS catalogue (needs a network).

`wmt14_translate/fr-en` and `wmt14_translate/de-en` download tens of gigabytes of raw corpora
from statmt.org and other hosts before they can be prepared; offline, loading fails at once
with one DataError instead of waiting on timeouts.
"""

import socket

import tensorflow_datasets as tfds

from jaxseq.datasets.textfiles import DataError

PAIRS = ("fr-en", "de-en")
HOST = "www.statmt.org"


def _reachable(host: str, timeout: float = 3.0) -> bool:
  try:
    socket.create_connection((host, 443), timeout=timeout).close()
    return True
  except OSError:
    return False


def load_splits(pair: str, tfds_dir: str) -> dict:
  """{split: ArrayRecord data source} of wmt14_translate/<pair>, prepared once in tfds_dir."""
  if pair not in PAIRS:
    raise DataError(f"WMT'14 pair {pair!r} is not available; allowed: {', '.join(PAIRS)}")
  name = f"wmt14_translate/{pair}"
  builder = tfds.builder(name, data_dir=tfds_dir, file_format="array_record")
  if not builder.is_prepared():
    if not _reachable(HOST):
      raise DataError(f"{name} is not prepared in {tfds_dir} and {HOST} cannot be reached: "
                      "WMT'14 needs a network to download (use multi30k or tatoeba offline)")
    builder.download_and_prepare(file_format="array_record")
  return builder.as_data_source()
