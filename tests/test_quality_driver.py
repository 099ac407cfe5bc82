"""The shared train-and-score driver through its users: an ensemble scored next to its
members and a decoding sweep, on the session's tiny trained workdir; and the one-line
answers to bad flags of the training users."""

import json

import pytest

from benchmarks.quality import decode_sweep, ensemble, quality, time_to_quality


def test_an_ensemble_is_scored_next_to_its_members(reference, tmp_path):
  assert (
    ensemble.main(
      [f"--workdir={reference}", f"--workdir={reference}", "--name=ens", f"--out_dir={tmp_path}"]
    )
    == 0
  )
  record = json.loads((tmp_path / "ens.json").read_text())
  assert record["command"].startswith("python -m benchmarks.quality.ensemble --workdir=")
  assert (record["recipe"], record["direction"]) == ("ens", "en-de")
  assert [m["label"] for m in record["members"]] == ["seed 0, reference"] * 2
  member = record["members"][0]
  assert record["heldout"]["sentences"] == member["heldout"]["sentences"] == 20
  assert 0 <= record["heldout"]["bleu"] <= 100
  assert record["num_parameters"] == 2 * member["num_parameters"]
  assert set(record["decode_seconds"]["ensemble"]) == {"heldout"}


def test_the_decode_sweep_scores_every_setting_on_the_heldout_split(reference, tmp_path):
  assert (
    decode_sweep.main(
      [
        f"--workdir={reference}",
        "--name=sweep",
        "--beam_sizes=1,2",
        "--alphas=0.6",
        f"--out_dir={tmp_path}",
      ]
    )
    == 0
  )
  record = json.loads((tmp_path / "sweep.json").read_text())
  assert [(row["beam_size"], row["alpha"]) for row in record["grid"]] == [(1, 0.6), (2, 0.6)]
  best = max(row["heldout"]["bleu"] for row in record["grid"])
  assert record["chosen"]["heldout"]["bleu"] == best
  assert record["chosen"]["test"] == {}  # the generated numbers have no test split
  assert record["command"].endswith("--beam_sizes=1,2 --alphas=0.6 " + f"--out_dir={tmp_path}")


@pytest.mark.parametrize(
  "main,argv,message",
  [
    (quality.main, ["--name=x", "--workdir=/tmp/x", "--config.no_such_field=1"], "no_such_field"),
    (
      time_to_quality.main,
      ["--config=configs/no_such_config.py", "--name=x", "--workdir=/tmp/x", "--thresholds=30"],
      "no_such_config.py",
    ),
  ],
)
def test_a_bad_flag_is_one_error_line(main, argv, message, capsys):
  assert main(["prog", *argv]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: bad flag:") and message in err
