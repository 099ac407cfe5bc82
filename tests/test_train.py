"""End to end: the real train.py, as a user runs it; its flag mistakes in this process;
jaxseq-train, the same command."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import train
from jaxseq.training import main as train_command
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
    ("stray", ["'stray' is not a flag"]),  # a word without -- does not start a default run
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


@pytest.mark.parametrize("argv", [["jaxseq-train", "--help"], ["train.py", "-h"]])
def test_help_names_the_flags(capsys, argv):
  assert train.main is train_command.main
  assert train_command.main(argv) == 0
  out, err = capsys.readouterr()
  assert out.startswith(f"usage: {argv[0]} [--config=FILE]") and err == ""
  for flag in ("--config:", "--workdir:", "configs/default.py"):
    assert flag in out


def test_jaxseq_train_and_train_py_take_the_same_flags(tmp_path):
  """Both as a user runs them, from another folder, with a config file that imports another
  one (as configs.NAME): the same one-line message and exit status 2."""
  script = pathlib.Path(sys.executable).with_name("jaxseq-train")
  flags = [
    f"--workdir={tmp_path / 'run'}",
    f"--config={runs.REPO / 'configs' / 'multi30k_en_de.py'}",
    "--config.model.colour=red",
  ]
  results = [
    subprocess.run(
      command + flags,
      cwd=tmp_path,
      env=dict(os.environ, PYTHONPATH=""),
      capture_output=True,
      text=True,
      timeout=300,
    )
    for command in ([str(script)], [sys.executable, str(runs.REPO / "train.py")])
  ]
  for result in results:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: bad flag: --config.model.colour: the config has no")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
  assert results[0].stderr == results[1].stderr
  assert not (tmp_path / "run").exists()
