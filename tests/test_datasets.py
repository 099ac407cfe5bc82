"""TFDS builders on tiny corpora in tmp_path, and split sizes of the real shared files."""

import dataclasses
import fcntl
import glob
import os
import threading

import pytest

from jaxseq.data import corpora, datasets
from jaxseq.data.datasets import multi30k, tatoeba
from jaxseq.data.datasets.textfiles import DataError
from jaxseq.training import configuration

SHARED = os.environ.get("JAXSEQ_DATA_DIR") or os.path.join(
  os.path.dirname(datasets.REPO_ROOT), "shared", "data"
)


def corpus_config(tmp_path, dataset, source, target, **data_fields):
  return configuration.TrainConfig.from_dict(
    dict(
      dataset=dataset,
      seed=0,
      data_dir=str(tmp_path / "raw"),
      tfds_dir=str(tmp_path / "tfds"),
      data=dict(source_lang=source, target_lang=target, tokenizer="word", **data_fields),
    )
  )


def write_multi30k(root, sizes):
  os.makedirs(root / "multi30k", exist_ok=True)
  for stem, n in sizes.items():
    (root / "multi30k" / f"{stem}.de").write_text("".join(f"satz {stem} {i}\n" for i in range(n)))
    (root / "multi30k" / f"{stem}.en").write_text("".join(f"line {stem} {i}\n" for i in range(n)))


def test_multi30k_builder_keeps_every_split_in_file_order(tmp_path):
  write_multi30k(tmp_path / "raw", {"train": 7, "val": 3, "test2016": 2, "test2017": 4})
  config = corpus_config(tmp_path, "multi30k", "en", "de")
  splits = datasets.multi30k_splits(config)
  assert {k: len(v) for k, v in splits.items()} == {
    "train": 7,
    "validation": 3,
    "test2016": 2,
    "test2017": 4,
  }
  assert splits["validation"] == [(f"line val {i}", f"satz val {i}") for i in range(3)]
  train = splits["train"]  # read on demand from the array_record files, not a list
  assert isinstance(train, datasets.PairSource) and not isinstance(train, list)
  assert train[6] == ("line train 6", "satz train 6")
  assert train.take([5, 0]) == [("line train 5", "satz train 5"), ("line train 0", "satz train 0")]
  assert list(train[1:3]) == [(f"line train {i}", f"satz train {i}") for i in (1, 2)]
  corpus = corpora.load_corpus(config)
  assert set(corpus.test) == {"test2016", "test2017"} and corpus.eval == splits["validation"]


def whole(splits: dict) -> dict:
  """Every split as a list (the training split is read on demand)."""
  return {name: list(pairs) for name, pairs in splits.items()}


def prepared_dirs(tmp_path) -> set[str]:
  """The prepared TFDS dataset directories under tmp_path/tfds (each has a dataset_info.json)."""
  pattern = os.path.join(tmp_path, "tfds", "**", "dataset_info.json")
  return {os.path.dirname(p) for p in glob.glob(pattern, recursive=True)}


def test_multi30k_edited_file_is_prepared_afresh_and_unchanged_files_reuse_it(tmp_path):
  write_multi30k(tmp_path / "raw", {"train": 4, "val": 3, "test2016": 1, "test2017": 1})
  config = corpus_config(tmp_path, "multi30k", "en", "de")
  first = whole(datasets.multi30k_splits(config))
  once = prepared_dirs(tmp_path)
  assert len(once) == 1
  assert whole(datasets.multi30k_splits(config)) == first and prepared_dirs(tmp_path) == once
  raw = tmp_path / "raw" / "multi30k"  # one pair removed, one changed
  (raw / "val.en").write_text("line val 0\nedited line\n")
  (raw / "val.de").write_text("satz val 0\nsatz val 2\n")
  edited = whole(datasets.multi30k_splits(config))
  assert edited["validation"] == [("line val 0", "satz val 0"), ("edited line", "satz val 2")]
  assert edited["train"] == first["train"] and len(prepared_dirs(tmp_path)) == 2
  write_multi30k(tmp_path / "raw", {"train": 4, "val": 3, "test2016": 1, "test2017": 1})
  assert whole(datasets.multi30k_splits(config)) == first and len(prepared_dirs(tmp_path)) == 2


def test_run_that_finds_the_corpus_being_prepared_waits_and_reads_that_copy(tmp_path):
  write_multi30k(tmp_path / "raw", {"train": 5, "val": 2, "test2016": 1, "test2017": 1})
  config = corpus_config(tmp_path, "multi30k", "en", "de")
  raw = sorted(glob.glob(str(tmp_path / "raw" / "multi30k" / "*")))
  other = multi30k.Multi30k(
    raw_dir=str(tmp_path / "raw" / "multi30k"),
    data_dir=datasets.keyed_tfds_dir(config, raw),
    file_format="array_record",
  )
  root = os.fspath(other.data_dir_root)
  os.makedirs(root)
  got = {}
  with open(os.path.join(root, "multi30k.lock"), "w") as lock:  # another run is preparing
    fcntl.flock(lock, fcntl.LOCK_EX)
    waiting = threading.Thread(target=lambda: got.update(whole(datasets.multi30k_splits(config))))
    waiting.start()
    waiting.join(timeout=1.0)
    assert waiting.is_alive()  # it waits instead of writing beside the other run
    other.download_and_prepare(download_dir=os.path.join(root, "downloads"))
  waiting.join(timeout=120)
  assert got["validation"] == [(f"line val {i}", f"satz val {i}") for i in range(2)]
  assert len(got["train"]) == 5 and len(prepared_dirs(tmp_path)) == 1


def test_tatoeba_sentence_removed_from_the_file_is_gone_after_reload(tmp_path):
  os.makedirs(tmp_path / "raw" / "tatoeba-eng-fra")
  path = tmp_path / "raw" / "tatoeba-eng-fra" / "eng-fra.txt"
  lines = [f"Word {i}.\tMot {i}." for i in range(200)]  # 2% held out: both splits non-empty
  path.write_text("\n".join(lines) + "\n")
  config = corpus_config(tmp_path, "tatoeba", "fra", "eng", variant="full")
  first = whole(datasets.tatoeba_splits(config))
  once = prepared_dirs(tmp_path)
  assert whole(datasets.tatoeba_splits(config)) == first and prepared_dirs(tmp_path) == once
  removed = ("Mot 7.", "Word 7.")
  assert removed in first["train"] + first["validation"]
  path.write_text("\n".join(line for line in lines if line != "Word 7.\tMot 7.") + "\n")
  edited = whole(datasets.tatoeba_splits(config))
  pairs = edited["train"] + edited["validation"]
  assert removed not in pairs and len(pairs) == len(lines) - 1
  assert len(prepared_dirs(tmp_path)) == 2


def test_multi30k_bad_file_reaches_the_caller_as_data_error(tmp_path):
  write_multi30k(tmp_path / "raw", {"train": 3, "val": 1, "test2016": 1, "test2017": 1})
  (tmp_path / "raw" / "multi30k" / "val.en").write_text("a\nb\n")
  with pytest.raises(DataError, match=r"val\.de has 1 lines but .*val\.en has 2"):
    datasets.multi30k_splits(corpus_config(tmp_path, "multi30k", "de", "en"))


def test_tutorial_normalization():
  assert tatoeba.normalize("  Ça, c'est très BIEN!? ") == "ca c est tres bien ! ?"
  assert tatoeba.normalize("I'm 20 years old.") == "i m years old ."


@pytest.mark.parametrize(
  "eng, keep",
  [
    ("i am cold .", True),
    ("i m ok .", True),
    ("he is tall .", True),
    ("he isn t here .", True),
    ("she s gone .", True),
    ("you re right .", True),
    ("they are one two three four five .", True),
    ("they are one two three four five six seven .", False),  # 10 words
    ("i miss you .", False),
    ("it is cold .", False),
    ("hes here .", False),
  ],
)
def test_tutorial_filter_rules(eng, keep):
  assert tatoeba.keep_tutorial_pair("je suis .", eng) is keep


def test_tutorial_filter_limits_the_french_side_too():
  assert tatoeba.keep_tutorial_pair("un deux trois quatre cinq six sept huit neuf", "i am .")
  assert not tatoeba.keep_tutorial_pair(
    "un deux trois quatre cinq six sept huit neuf dix", "i am ."
  )


def test_tatoeba_heldout_split_is_grouped_by_source(tmp_path):
  lines, words = [], [f"{a}{b}" for a in "bcdfg" for b in "aeiou"] * 2
  for i, w in enumerate(w + "x" * (i // 25) for i, w in enumerate(words)):
    # every French sentence has two English references, or three when i % 3 == 0
    lines += [f"I am {w}.\tJe suis {w}.", f"I'm {w}.\tJe suis {w}."]
    if i % 3 == 0:
      lines.append(f"I am so {w}.\tJe suis {w}.")
  lines.append("Go.\tVa !")  # dropped by the tutorial filter
  os.makedirs(tmp_path / "raw" / "tatoeba-eng-fra")
  (tmp_path / "raw" / "tatoeba-eng-fra" / "eng-fra.txt").write_text("\n".join(lines) + "\n")
  config = corpus_config(tmp_path, "tatoeba", "fra", "eng", variant="tutorial")
  splits = datasets.tatoeba_splits(config)
  train_sources = {s for s, _ in splits["train"]}
  held_sources = {s for s, _ in splits["validation"]}
  assert held_sources and not held_sources & train_sources
  assert len(splits["train"]) + len(splits["validation"]) == len(lines) - 1
  corpus = corpora.load_corpus(config)
  assert len(corpus.eval) == len(held_sources) == len(corpus.eval_references)
  for (src, first), refs in zip(corpus.eval, corpus.eval_references):
    all_refs = [t for s, t in splits["validation"] if s == src]
    assert first == refs[0] and refs == all_refs and len(refs) in (2, 3)


def test_tatoeba_missing_tab_is_a_data_error(tmp_path):
  os.makedirs(tmp_path / "raw" / "tatoeba-eng-fra")
  (tmp_path / "raw" / "tatoeba-eng-fra" / "eng-fra.txt").write_text("Go.\tVa !\nHi.\n")
  with pytest.raises(DataError, match=r"eng-fra\.txt:2: no tab"):
    datasets.tatoeba_splits(corpus_config(tmp_path, "tatoeba", "fra", "eng", variant="full"))


@pytest.mark.skipif(
  not os.path.isfile(os.path.join(SHARED, "multi30k", "train.de")),
  reason="the shared Multi30k files are not here",
)
def test_real_multi30k_split_sizes(tmp_path):
  config = dataclasses.replace(corpus_config(tmp_path, "multi30k", "de", "en"), data_dir=SHARED)
  sizes = {k: len(v) for k, v in datasets.multi30k_splits(config).items()}
  assert sizes == {"train": 29_000, "validation": 1_014, "test2016": 1_000, "test2017": 1_000}


def test_wmt14_offline_fails_with_one_clear_message(tmp_path, monkeypatch):
  from jaxseq.data.datasets import wmt14

  monkeypatch.setattr(wmt14.textfiles, "reachable", lambda host: False)  # as on a machine offline
  with pytest.raises(DataError, match="needs a network"):
    wmt14.prepared_builder("de-en", str(tmp_path))


def test_missing_local_copy_offline_is_one_data_error(tmp_path, monkeypatch):
  from jaxseq.data.datasets import textfiles

  monkeypatch.setattr(textfiles, "reachable", lambda host: False)  # as on a machine offline
  config = corpus_config(tmp_path, "multi30k", "de", "en")
  with pytest.raises(DataError, match=r"multi30k/train\.de is missing and .* cannot be reached"):
    datasets.multi30k_splits(config)
  config = corpus_config(tmp_path, "tatoeba", "fra", "eng", variant="full")
  with pytest.raises(DataError, match=r"eng-fra\.txt is missing and www\.manythings\.org"):
    datasets.tatoeba_splits(config)
