"""End to end: the real train.py, as a user runs it; its flag mistakes in this process."""

import json

import pytest

import train
from tests import runs


def test_train_py_runs_and_fills_the_workdir(reference_run):
  """The session's tiny run of the real train.py (tests/conftest.py) and what it left."""
  workdir, printed = reference_run
  summary = json.loads((workdir / "summary.json").read_text())
  config = summary["config"]
  assert summary["steps"] == config["num_train_steps"] == 30
  held = summary["heldout"]
  assert held["sentences"] == config["data"]["num_eval"]
  assert 0.0 <= held["exact_match"] <= 1.0 and held["loss"] > 0
  assert summary["tokens_per_second"] > 0 and summary["wall_seconds"] > 0
  assert config["model"]["hidden_size"] == 16
  for name in ("attention_0.png", "loss.png", "bleu.png"):
    assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
  assert "sample translations" in printed["stdout"] + printed["stderr"]
  translations = (workdir / "translations.txt").read_text().splitlines()
  assert len(translations) == held["sentences"]


@pytest.mark.parametrize(
  "flag, words",
  [
    ("--config.model.attention=cosine", ["config.model.attention='cosine'", "bahdanau"]),
    ("--config.model.cell=rnn", ["config.model.cell='rnn'", "gru, lstm"]),
    ("--config.model.hidden_size=-4", ["config.model.hidden_size=-4", "integer >= 1"]),
    ("--config.teacher_forcing_ratio=1.5", ["teacher_forcing_ratio=1.5", "[0.0, 1.0]"]),
    ("--config.model.readout=luong", ["config.model.readout='luong'", "attentional, none"]),
    ("--config.model.colour=red", ["colour"]),
    ("--config.batch_size=lots", ["batch_size", "lots"]),
  ],
)
def test_a_bad_config_is_one_line_and_exit_status_2(tmp_path, capsys, flag, words):
  """train.py's main, in this process: a subprocess would add only its start-up."""
  status = train.main(["train.py", f"--workdir={tmp_path / 'run'}", flag])
  out, err = capsys.readouterr()
  assert status == 2, err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and out == "", err
  assert "Traceback" not in err
  for word in words:
    assert word in lines[0]
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_batch_larger_than_the_corpus_is_one_line(capfd, tmp_path):
  result = runs.train_here(capfd, tmp_path, data__num_train=20, batch_size=32)
  assert result.returncode == 2, result.stderr
  errors = runs.error_lines(result)
  assert len(errors) == 1 and "config.batch_size=32" in errors[0]
  assert "at most the" in errors[0] and "Traceback" not in result.stderr
