"""The real corpora: where their files are, and their splits as text pairs via TFDS.

Raw files are read from a local directory with the layout of ../shared/data
(multi30k/train.de, ..., tatoeba-eng-fra/eng-fra.txt): config.data_dir, else
$JAXSEQ_DATA_DIR, else <repo>/../shared/data. Where the directory lacks them, the builders
download the official files (needs a network). Prepared TFDS data (array_record, read
through `as_data_source()`, so TensorFlow is not needed) goes under config.tfds_dir, else
$JAXSEQ_TFDS_DIR, else ~/.cache/jaxseq/tfds.

The prepared copy is keyed by the content of the raw files it was built from:
<tfds_dir>/<key>/<dataset>/<config>/<version>/, where key is the first 16 hex digits of a
SHA-256 over the local raw files' names and bytes (`raw_digest`). An edited raw file thus gets
a fresh preparation instead of a stale copy, and unchanged files reuse the cache, wherever
they live. Where no raw file is local, the key is "download": the builder fetches the
official release. Copies for older contents stay on disk until removed by hand. WMT'14 comes
whole from the TFDS catalogue and is kept directly in <tfds_dir>.
"""

import collections.abc
import fcntl
import functools
import hashlib
import os
import pathlib

import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from jaxseq.data.datasets import multi30k, tatoeba, wmt14
from jaxseq.data.datasets.textfiles import DataError  # noqa: F401  (re-exported)

REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[3])


def data_dir(config) -> str:
  """The local directory of raw corpora."""
  return (
    config.data_dir
    or os.environ.get("JAXSEQ_DATA_DIR")
    or os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
  )


def tfds_dir(config) -> str:
  """Where prepared TFDS datasets are kept."""
  return (
    config.tfds_dir
    or os.environ.get("JAXSEQ_TFDS_DIR")
    or os.path.join(os.path.expanduser("~"), ".cache", "jaxseq", "tfds")
  )


def raw_digest(paths: list[str]) -> str:
  """SHA-256 over the base names and bytes of the files, in name order.

  Base names, not full paths, so the same corpus copied elsewhere reuses its prepared data;
  each file is hashed on its own in chunks (memory stays flat) and its fixed-size digest
  follows its name, so moving lines from one file to another changes the result.
  """
  digest = hashlib.sha256()
  for path in sorted(paths, key=os.path.basename):
    with open(path, "rb") as f:
      content = hashlib.file_digest(f, "sha256").digest()
    digest.update(os.path.basename(path).encode("utf-8") + b"\0" + content)
  return digest.hexdigest()


def keyed_tfds_dir(config, raw_files: list[str]) -> str:
  """The data_dir for a builder reading raw_files: tfds_dir(config)/<key> (see module doc)."""
  present = [p for p in raw_files if os.path.isfile(p)]
  return os.path.join(tfds_dir(config), raw_digest(present)[:16] if present else "download")


def prepare(make_builder) -> dict:
  """{split: data source} of the builder that make_builder() returns, preparing its
  array_record files the first time; the training split's source gives raw records (see
  PairSource).

  Runs started together on a fresh cache prepare once: the first takes an exclusive lock
  (<data_dir_root>/<name>.lock) while it writes, the others wait for it and then read its
  copy through a builder made afresh (one made before the copy existed has no split info).
  """
  tfds.disable_progress_bar()
  builder = make_builder()
  if builder.is_prepared():
    return data_sources(builder)
  root = os.fspath(builder.data_dir_root)
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, f"{builder.name}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    builder = make_builder()
    if not builder.is_prepared():
      builder.download_and_prepare(download_dir=os.path.join(root, "downloads"))
  return data_sources(builder)


def data_sources(builder: tfds.core.DatasetBuilder) -> dict:
  """{split: data source} of a prepared builder; the training split's gives raw records
  (see PairSource)."""
  sources = builder.as_data_source()
  sources["train"] = builder.as_data_source(
    split="train", deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
  )
  return sources


def text_pairs(source, src_key: str, tgt_key: str) -> list[tuple[str, str]]:
  """All records of a data source as (source text, target text)."""
  records = source.__getitems__(range(len(source))) if len(source) else []
  return [(r[src_key].decode("utf-8"), r[tgt_key].decode("utf-8")) for r in records]


class PairSource(collections.abc.Sequence):
  """The records of a prepared split as (source text, target text), read on demand.

  Random access into the array_record files: nothing is read until asked for, so a
  training split of any size costs only its index in memory. `source` gives the raw
  records (TFDS's DeserializeMethod.RAW_BYTES); they are parsed here as tf.train.Example
  protos, which costs a fraction of TFDS's feature decoding for two text fields.
  """

  def __init__(self, source, src_key: str, tgt_key: str):
    self.source, self.src_key, self.tgt_key = source, src_key, tgt_key

  def __len__(self) -> int:
    return len(self.source)

  def _pair(self, record: bytes) -> tuple[str, str]:
    feature = tf_example_pb2.Example.FromString(record).features.feature
    return (
      feature[self.src_key].bytes_list.value[0].decode("utf-8"),
      feature[self.tgt_key].bytes_list.value[0].decode("utf-8"),
    )

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.take(range(*index.indices(len(self))))
    if not -len(self) <= index < len(self):
      raise IndexError(f"pair {index} of {len(self)}")
    return self._pair(self.source[index % len(self)])

  def take(self, indices) -> list[tuple[str, str]]:
    """The pairs at these indices, read in one call."""
    indices = list(indices)
    return [self._pair(r) for r in self.source.__getitems__(indices)] if indices else []

  def __iter__(self):
    for start in range(0, len(self), 4096):
      yield from self.take(range(start, min(start + 4096, len(self))))


def split_pairs(sources: dict, config) -> dict:
  """{split: pairs}: the training split as a PairSource, the others read whole."""
  langs = config.data.source_lang, config.data.target_lang
  return {
    split: PairSource(source, *langs) if split == "train" else text_pairs(source, *langs)
    for split, source in sources.items()
  }


def multi30k_splits(config) -> dict:
  """{train, validation, test2016, test2017: [(source, target)]} in config.data's direction
  (train: a PairSource)."""
  raw_dir = os.path.join(data_dir(config), "multi30k")
  raw_files = [p for langs in multi30k.local_files(raw_dir).values() for p in langs.values()]
  return split_pairs(
    prepare(
      functools.partial(
        multi30k.Multi30k,
        raw_dir=raw_dir,
        data_dir=keyed_tfds_dir(config, raw_files),
        file_format="array_record",
      )
    ),
    config,
  )


def tatoeba_splits(config) -> dict:
  """{train, validation: [(source, target)]} of config.data.variant (tutorial | full); the
  held-out split is grouped by the French side (train: a PairSource)."""
  raw_dir = os.path.join(data_dir(config), "tatoeba-eng-fra")
  raw_files = [os.path.join(raw_dir, tatoeba.LOCAL_FILE)]
  return split_pairs(
    prepare(
      functools.partial(
        tatoeba.TatoebaEngFra,
        config=config.data.variant,
        raw_dir=raw_dir,
        data_dir=keyed_tfds_dir(config, raw_files),
        file_format="array_record",
      )
    ),
    config,
  )


def wmt14_splits(config) -> dict:
  """{train, validation, test: [(source, target)]} of wmt14_translate (needs a network;
  train: a PairSource)."""
  return split_pairs(
    data_sources(wmt14.prepared_builder(config.data.pair, tfds_dir(config))), config
  )
