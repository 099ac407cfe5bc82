"""benchmarks/quality/constraints.py on the session's tiny trained workdir: the JSON it
writes and the invariants of its numbers; and how it picks constraint words."""

import json

from benchmarks.quality import constraints
from jaxseq.data import vocab


def test_the_constraints_benchmark_writes_both_tables(trained_workdir, tmp_path, capsys):
  out = tmp_path / "constraints.json"
  argv = [
    f"--workdir={trained_workdir}",
    "--split=heldout",  # the generated numbers have no test split
    f"--out={out}",
    "--num_sentences=8",
    "--beam_sizes=1,2",
    "--constraints=0,1",
    "--repeats=1",
    "--quality_beam=2",
  ]
  assert constraints.main(argv) == 0
  record = json.loads(out.read_text())
  assert record["command"].startswith("python -m benchmarks.quality.constraints --workdir=")
  assert record["split"] == "heldout" and record["step"] > 0
  assert {"hardware", "versions", "settings", "speed_target"} <= set(record)
  assert record["speed_target"]["passed"] is None  # no beam 4 in this run
  assert record["settings"]["sentences"] == 8

  speed = record["speed"]
  assert [(r["beam_size"], r["constraints_per_sentence"]) for r in speed] == [
    (1, 0),
    (1, 1),
    (2, 0),
    (2, 1),
  ]
  for row in speed:
    assert row["seconds"] > 0 and row["sentences_per_second"] > 0
    assert row["speed_vs_unconstrained"] > 0
    assert 0 <= row["constraints_met"] <= 1
    if row["constraints_per_sentence"] == 0:
      assert row["constraints"] == 0 and row["speed_vs_unconstrained"] == 1
  assert speed[1]["constraints"] > 0  # the numbers' references have eligible words

  quality = record["quality"]
  plain, constrained = quality["rows"]
  assert (plain["outputs"], constrained["outputs"]) == ("unconstrained", "constrained")
  assert quality["sentences"] == 8
  assert 0 <= quality["sentences_unmet"] <= quality["sentences_constrained"] <= 8
  assert quality["sentences_without_output"] <= quality["sentences_unmet"]
  assert 0 <= constrained["constraints_met"] <= 1
  assert plain["constraints_met"] == 0  # only words the outputs miss are asked for
  # the unconstrained scores are those of the speed table's row without constraints
  assert plain["bleu"] == speed[2]["bleu"]
  if quality["sentences_constrained"] == 0:
    assert constrained["bleu"] == plain["bleu"]
  printed = capsys.readouterr().out
  assert "| beam | constraints |" in printed and f"wrote {out}" in printed


def test_no_constraints_leave_the_scores_unchanged(trained_workdir, tmp_path):
  out = tmp_path / "none.json"
  argv = [
    f"--workdir={trained_workdir}",
    "--split=heldout",
    f"--out={out}",
    "--num_sentences=4",
    "--beam_sizes=1",
    "--constraints=0",
    "--repeats=1",
    "--quality_beam=1",
    "--min_chars=99",  # no word is eligible
  ]
  assert constraints.main(argv) == 0
  quality = json.loads(out.read_text())["quality"]
  plain, constrained = quality["rows"]
  assert quality["sentences_constrained"] == quality["constraints"] == 0
  assert constrained["bleu"] == plain["bleu"]
  assert constrained["bleu_lc_tok"] == plain["bleu_lc_tok"]


def test_eligible_words_are_long_writable_words_in_a_seeded_order():
  words = vocab.WordVocab.build(["ein roter Helm , ein Mann", "zwei Hunde"], min_count=1)
  found = constraints.eligible_words("Ein Mann, roter Helm. Mann ein Katzen", words, 4)
  assert found == ["Mann", "roter", "Helm"]  # "Ein", "ein": short; "Katzen": unknown
  order = constraints.word_order(found, seed=0, sentence=3)
  assert sorted(order) == sorted(found)
  assert order == constraints.word_order(found, seed=0, sentence=3)
  assert constraints.take(order, 2, words, most_tokens=32) == order[:2]
  assert constraints.take(order, 5, words, most_tokens=1) == order[:1]
