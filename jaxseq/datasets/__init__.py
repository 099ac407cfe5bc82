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

import hashlib
import os

import tensorflow_datasets as tfds

from jaxseq.datasets.textfiles import DataError  # noqa: F401  (re-exported)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data_dir(config) -> str:
  """The local directory of raw corpora."""
  return (config.get("data_dir") or os.environ.get("JAXSEQ_DATA_DIR")
          or os.path.join(os.path.dirname(REPO_ROOT), "shared", "data"))


def tfds_dir(config) -> str:
  """Where prepared TFDS datasets are kept."""
  return (config.get("tfds_dir") or os.environ.get("JAXSEQ_TFDS_DIR")
          or os.path.join(os.path.expanduser("~"), ".cache", "jaxseq", "tfds"))


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


def prepare(builder: tfds.core.DatasetBuilder) -> dict:
  """{split: data source}, preparing the builder's array_record files the first time."""
  tfds.disable_progress_bar()
  if not builder.is_prepared():
    builder.download_and_prepare(
        download_dir=os.path.join(os.fspath(builder.data_dir_root), "downloads"))
  return builder.as_data_source()


def text_pairs(source, src_key: str, tgt_key: str) -> list[tuple[str, str]]:
  """All records of a data source as (source text, target text)."""
  records = source.__getitems__(range(len(source))) if len(source) else []
  return [(r[src_key].decode("utf-8"), r[tgt_key].decode("utf-8")) for r in records]


def multi30k_splits(config) -> dict[str, list[tuple[str, str]]]:
  """{train, validation, test2016, test2017: [(source, target)]} in config.data's direction."""
  from jaxseq.datasets import multi30k
  raw_dir = os.path.join(data_dir(config), "multi30k")
  raw_files = [p for langs in multi30k.local_files(raw_dir).values() for p in langs.values()]
  builder = multi30k.Multi30k(raw_dir=raw_dir, data_dir=keyed_tfds_dir(config, raw_files),
                              file_format="array_record")
  sources = prepare(builder)
  return {split: text_pairs(source, config.data.source_lang, config.data.target_lang)
          for split, source in sources.items()}


def tatoeba_splits(config) -> dict[str, list[tuple[str, str]]]:
  """{train, validation: [(source, target)]} of config.data.variant (tutorial | full); the
  held-out split is grouped by the French side."""
  from jaxseq.datasets import tatoeba
  raw_dir = os.path.join(data_dir(config), "tatoeba-eng-fra")
  raw_files = [os.path.join(raw_dir, tatoeba.LOCAL_FILE)]
  builder = tatoeba.TatoebaEngFra(config=config.data.variant, raw_dir=raw_dir,
                                  data_dir=keyed_tfds_dir(config, raw_files),
                                  file_format="array_record")
  return {split: text_pairs(source, config.data.source_lang, config.data.target_lang)
          for split, source in prepare(builder).items()}


def wmt14_splits(config) -> dict[str, list[tuple[str, str]]]:
  """{train, validation, test: [(source, target)]} of wmt14_translate (needs a network)."""
  from jaxseq.datasets import wmt14
  sources = wmt14.load_splits(config.data.pair, tfds_dir(config))
  return {split: text_pairs(source, config.data.source_lang, config.data.target_lang)
          for split, source in sources.items()}
