"""The shared train-and-score driver through its users: an ensemble scored next to its
members, its members chosen from a pool, and a decoding sweep, on the session's tiny
trained workdir; and the one-line answers to bad flags."""

import json
import shutil

import pytest

from benchmarks.quality import decode_sweep, ensemble, ensemble_select, quality, time_to_quality


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


def test_a_pool_is_ranked_by_the_members_own_heldout_scores_equals_in_order():
  members = [
    {"workdir": "a", "heldout": {"bleu": 40.1}},
    {"workdir": "b", "heldout": {"bleu": 41.0}},
    {"workdir": "c", "heldout": {"bleu": 40.1}},
  ]
  assert ensemble_select.ranked(members, "bleu") == ["b", "a", "c"]
  rows = [{"size": n, "heldout": {"bleu": b}} for n, b in [(1, 41.0), (2, 42.0), (3, 42.0)]]
  assert ensemble_select.choose(rows, "bleu")["size"] == 2  # the smaller of equals


def test_members_are_chosen_on_the_heldout_split_alone(reference, tmp_path):
  # a copy whose summary claims the better held-out score ranks first
  better = tmp_path / "better"
  shutil.copytree(reference, better)
  summary = json.loads((better / "summary.json").read_text())
  summary["heldout"]["bleu"] += 1.0
  (better / "summary.json").write_text(json.dumps(summary))
  argv = [f"--workdir={reference}", f"--workdir={better}", "--name=pool", f"--out_dir={tmp_path}"]
  assert ensemble_select.main(argv) == 0
  record = json.loads((tmp_path / "pool.json").read_text())
  assert [row["workdirs"] for row in record["rows"]] == [
    [str(better)],
    [str(better), str(reference)],
  ]
  best = max(row["heldout"]["bleu"] for row in record["rows"])
  assert record["chosen"]["heldout"]["bleu"] == best
  assert record["chosen"]["workdirs"] == record["rows"][record["chosen"]["size"] - 1]["workdirs"]
  assert all(set(row["heldout"]) >= {"bleu", "seconds"} for row in record["rows"])
  assert "test" not in record["chosen"]  # no test split is decoded to choose


@pytest.mark.parametrize(
  "argv,message",
  [
    (["--workdir=/tmp/a", "--name=x"], "at least two --workdir"),
    (["--workdir=/tmp/a", "--workdir=/tmp/a", "--name=x"], "named once"),
    (["--workdir=/tmp/a", "--workdir=/tmp/b", "--name=x", "--max_size=1"], "--max_size"),
  ],
)
def test_a_bad_pool_is_refused(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    ensemble_select.main(argv)
  assert exit_info.value.code == 2 and message in capsys.readouterr().err


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
