"""End to end: the real train.py in a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.data.num_train=300", "--config.data.num_eval=20", "--config.batch_size=16",
        "--config.model.hidden_size=16", "--config.model.embed_size=8",
        "--config.model.attention_size=8", "--config.log_every_steps=5",
        "--config.eval_every_steps=10", "--config.checkpoint_every_steps=10"]


def run_train(*args, timeout=300):
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                        capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_train_py_runs_and_fills_the_workdir(tmp_path):
  workdir = tmp_path / "run"
  result = run_train(f"--workdir={workdir}", "--config.num_train_steps=12", *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["steps"] == 12
  held = summary["heldout"]
  assert held["sentences"] == 20
  assert 0.0 <= held["exact_match"] <= 1.0 and held["loss"] > 0
  assert summary["tokens_per_second"] > 0 and summary["wall_seconds"] > 0
  assert summary["config"]["model"]["hidden_size"] == 16
  for name in ("attention_0.png", "attention_1.png", "loss.png"):
    assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
  assert "sample translations" in result.stderr + result.stdout
  assert len((workdir / "translations.txt").read_text().splitlines()) == 20


@pytest.mark.parametrize("flag, words", [
    ("--config.model.attention=cosine", ["config.model.attention='cosine'", "bahdanau"]),
    ("--config.model.cell=rnn", ["config.model.cell='rnn'", "gru, lstm"]),
    ("--config.model.hidden_size=-4", ["config.model.hidden_size=-4", "integer >= 1"]),
    ("--config.teacher_forcing_ratio=1.5", ["teacher_forcing_ratio=1.5", "[0.0, 1.0]"]),
    ("--config.model.readout=luong", ["config.model.readout='luong'", "attentional, none"]),
    ("--config.model.colour=red", ["colour"]),
    ("--config.batch_size=lots", ["batch_size", "lots"]),
])
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
