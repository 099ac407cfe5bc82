"""benchmarks/data/scaling.py's generated corpora: the size asked, every copy marked, real
held-out and test splits."""

from benchmarks.data import scaling


def test_a_generated_corpus_repeats_the_training_pairs_with_marks(tmp_path):
  source = tmp_path / "multi30k"
  source.mkdir()
  for lang, words in (("de", ["eins", "zwei", "drei"]), ("en", ["one", "two", "three"])):
    (source / f"train.{lang}").write_text("".join(w + "\n" for w in words))
    (source / f"val.{lang}").write_text(f"val {lang}\n")
  scaling.write_corpus(str(tmp_path / "raw"), str(source), 7)
  out = tmp_path / "raw" / "multi30k"
  de = (out / "train.de").read_text().splitlines()
  en = (out / "train.en").read_text().splitlines()
  assert de == ["eins", "zwei", "drei", "eins (1)", "zwei (1)", "drei (1)", "eins (2)"]
  assert en[3:] == ["one (1)", "two (1)", "three (1)", "one (2)"]
  assert (out / "val.de").read_text() == "val de\n" and (out / "val.de").is_symlink()
