"""benchmarks/quality/coverage.py: its two measures on hand-made inputs, its flags, and the
script on the session's tiny trained workdir."""

import json

import numpy as np
import pytest

from benchmarks.quality import coverage


def test_word_coverage_sums_pieces_and_output_steps():
  attention = np.array(
    [
      [0.5, 0.25, 0.25, 0.0, 9.0],  # the last column is padding: ignored
      [0.0, 0.25, 0.25, 0.5, 9.0],
      [0.125, 0.0, 0.0, 0.875, 9.0],  # EOS step: counted like the others
    ]
  )
  # pieces 0 | 1 2 | 3: three words, the second of two pieces
  got = coverage.word_coverage(attention, [0, 1, 1, 2])
  np.testing.assert_allclose(got, [0.625, 1.0, 1.375])
  assert coverage.word_coverage(np.zeros((1, 0)), []).shape == (0,)


def test_under_translated_counts_words_below_the_threshold():
  coverages = [np.array([0.49, 0.5, 2.0]), np.array([0.0]), np.array([])]
  assert coverage.under_translated(coverages) == (2, 4)  # 0.49 and 0.0; 0.5 is not below
  assert coverage.under_translated(coverages, threshold=0.6) == (3, 4)


def test_repeats_count_beyond_the_first_and_beyond_the_reference():
  hypothesis = "a b c a b c a b c d"  # "a b c" three times, "b c a" and "c a b" twice
  trigrams = 8
  assert coverage.repeated_trigrams(hypothesis, ["x y z"]) == (2 + 1 + 1, trigrams)
  # a reference that repeats "a b c" twice licenses one repeat of it
  assert coverage.repeated_trigrams(hypothesis, ["a b c , a b c"]) == (1 + 1 + 1, trigrams)
  # the largest count in one reference counts, not the sum over references
  assert coverage.repeated_trigrams(hypothesis, ["a b c", "a b c"]) == (4, trigrams)
  assert coverage.repeated_trigrams("a b c d e", ["q"]) == (0, 3)
  assert coverage.repeated_trigrams("a b", ["a b"]) == (0, 0)
  # words, cased: "A b c" is another 3-gram than "a b c"
  assert coverage.repeated_trigrams("a b c A b c", []) == (0, 4)
  repeats, grams = coverage.over_translation([hypothesis, "a b c d e"], [["x y z"], ["a b c d e"]])
  assert (repeats, grams) == (4, trigrams + 3)


@pytest.mark.parametrize(
  "flag", ["--coverage_penalties=0,-0.1", "--coverage_penalties=a", "--coverage_penalties=nan"]
)
def test_bad_penalties_are_one_line_and_exit_2(flag, capsys):
  with pytest.raises(SystemExit) as exit:
    coverage.parse(["--workdir=w", "--name=n", flag])
  assert exit.value.code == 2
  assert "--coverage_penalties" in capsys.readouterr().err


def test_the_coverage_benchmark_writes_one_row_per_penalty(trained_workdir, tmp_path, capsys):
  argv = [
    f"--workdir={trained_workdir}",
    "--split=heldout",  # the generated numbers have no test split
    f"--out_dir={tmp_path}",
    "--name=tiny",
    "--num_sentences=8",
    "--beam_size=2",
    "--coverage_penalties=0,5",
  ]
  assert coverage.main(argv) == 0
  record = json.loads((tmp_path / "tiny.json").read_text())
  assert record["command"].startswith("python -m benchmarks.quality.coverage --workdir=")
  assert {"hardware", "versions", "settings", "steps"} <= set(record)
  assert record["split"] == "heldout" and record["settings"]["sentences"] == 8
  assert record["settings"]["beam_size"] == 2
  rows = record["rows"]
  assert [r["coverage_penalty"] for r in rows] == [0.0, 5.0]
  for row in rows:
    assert 0 <= row["under_translation"] <= 1 and 0 <= row["over_translation"] <= 1
    assert row["under_translated_words"] <= row["source_words"]
    assert row["source_words"] == rows[0]["source_words"] > 0
    assert row["bleu_signature"].startswith("nrefs:")
  printed = capsys.readouterr().out
  assert "| coverage penalty | BLEU |" in printed and "wrote" in printed
