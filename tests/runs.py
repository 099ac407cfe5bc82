"""Runs the real train.py in a subprocess with a tiny config, and reads what it leaves."""

import json
import os
import pathlib
import subprocess
import sys

from tests import faults

REPO = pathlib.Path(__file__).resolve().parents[1]

# Small enough that a run is mostly process start and compilation. Saves land at
# 7, 10, 14, 20, 21, 28 (held-out loss at the multiples of 7) and 30.
TINY = {
  "data.num_train": 300,
  "data.num_eval": 20,
  "model.hidden_size": 16,
  "model.max_length": 8,  # one length bucket: the train step compiles once
  "model.embed_size": 8,
  "model.attention_size": 8,
  "batch_size": 8,
  "num_train_steps": 30,
  "checkpoint_every_steps": 10,
  "eval_every_steps": 7,
  "log_every_steps": 5,
  "keep_checkpoints": 1,
  "num_attention_plots": 1,
  "num_samples": 2,
  "step_log": True,
}


FAULTS = ("fault_nan_steps", "fault_signal", "fault_signal_step")


# A user that file permissions bind, who may still read and search every folder (the
# interpreter and the libraries may live in a folder only root can enter).
UNPRIVILEGED = (
  "setpriv",
  "--reuid=65534",
  "--regid=65534",
  "--clear-groups",
  "--inh-caps=+dac_read_search",
  "--ambient-caps=+dac_read_search",
)


def _faults(overrides: dict) -> tuple[dict, dict]:
  """(config overrides, tests/faults.py's arguments) of a run's keyword arguments:
  fault_nan_steps="3,4", fault_signal="KILL", fault_signal_step=17."""
  faults = {k.removeprefix("fault_"): overrides.pop(k) for k in FAULTS if k in overrides}
  return overrides, faults


def _argv(workdir, overrides: dict) -> list[str]:
  fields = {**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}}
  return [
    str(REPO / "train.py"),
    f"--workdir={workdir}",
    *(f"--config.{k}={v}" for k, v in fields.items()),
  ]


def train_here(capfd, workdir, **overrides) -> subprocess.CompletedProcess:
  """train.py's main in this process, where a subprocess would add only its start-up
  (a real process is kept for what needs one: kill -9). capfd is pytest's fixture, which
  captures file descriptors 1 and 2, so that what libraries write outside Python is seen
  too. Same result fields as `train`."""
  import train as train_py  # the top-level train.py

  overrides, fault = _faults(dict(overrides))
  capfd.readouterr()
  with faults.installed(
    faults.parse_nan_steps(fault.get("nan_steps", "")),
    fault.get("signal", ""),
    fault.get("signal_step", 0),
  ):
    status = train_py.main(_argv(workdir, overrides))
  out, err = capfd.readouterr()
  return subprocess.CompletedProcess([], status, out, err)


def train(workdir, timeout: int = 300, **overrides) -> subprocess.CompletedProcess:
  """train.py --workdir=workdir with TINY updated by overrides (dots spelled '__'), in a
  subprocess that inherits the session's compilation cache (tests/conftest.py)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  overrides, fault = _faults(dict(overrides))
  argv = _argv(workdir, overrides)
  if fault:  # the same run under tests/faults.py, which injects them
    argv = [
      str(REPO / "tests" / "faults.py"),
      *(f"--{k}={v}" for k, v in fault.items()),
      "--",
      *argv[1:],
    ]
  return subprocess.run(
    [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
  )


def step_records(workdir) -> list[dict]:
  """The per-step records of steps.jsonl (losses; held-out records left out)."""
  records = []
  with open(pathlib.Path(workdir) / "steps.jsonl") as f:
    for line in f:
      record = json.loads(line)
      if "loss" in record:
        records.append(record)
  return records


def heldout_records(workdir) -> dict[int, float]:
  with open(pathlib.Path(workdir) / "steps.jsonl") as f:
    records = [json.loads(line) for line in f]
  return {r["step"]: r["heldout_loss"] for r in records if "heldout_loss" in r}


def checkpoint_steps(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def digest(workdir, step: int) -> str:
  """SHA-256 of every array of the saved train state (params, optimizer, step, key)."""
  path = pathlib.Path(workdir) / "checkpoints" / str(step) / "digest" / "metadata"
  return json.loads(path.read_text())["sha256"]


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
  return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def train_breaking_a_save(
  workdir,
  action: str,
  step: int,
  *,
  prefix: tuple = (),
  env: dict | None = None,
  timeout: int = 200,
  **overrides,
) -> subprocess.CompletedProcess:
  """tests/save_faults.py: train.py whose save of `step` meets a workdir broken by
  `action` ("unwritable" or "vanished"), in a subprocess started with the command
  prefix (e.g. setpriv). The timeout is below orbax's 300 s wait for a step directory
  that was never made: a run that hangs until then fails with TimeoutExpired."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
  return subprocess.run(
    [
      *prefix,
      sys.executable,
      "-m",
      "tests.save_faults",
      action,
      str(step),
      *_argv(workdir, overrides),
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
