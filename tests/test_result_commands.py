"""Every command that a committed results JSON records names a script that exists, so that
the command still reproduces its numbers after scripts move."""

import importlib.util
import json
import pathlib
import shlex

import pytest

from benchmarks import common

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "benchmarks" / "results").rglob("*.json"))


def _commands(value):
  """Every string under a 'command' key of a JSON value, however deep."""
  if isinstance(value, dict):
    for key, item in value.items():
      if key == "command" and isinstance(item, str):
        yield item
      else:
        yield from _commands(item)
  elif isinstance(value, list):
    for item in value:
      yield from _commands(item)


def script_of(command: str) -> str:
  """The module (python -m X) or script path that a recorded command runs, past the
  environment settings (NAME=value) and a `taskset -c CPUS` before it."""
  words = shlex.split(command)
  while words and "=" in words[0] and not words[0].startswith("-"):
    words = words[1:]
  if words[:2] == ["taskset", "-c"]:
    words = words[3:]
  if not words or words[0] not in ("python", "python3"):
    raise ValueError(f"{command!r} does not run python")
  return words[2] if words[1] == "-m" else words[1]


def test_a_command_is_read_past_its_environment_and_cpu_pinning():
  assert (
    script_of("JAX_NUM_CPU_DEVICES=2 python -m benchmarks.quality.quality --name=x")
    == "benchmarks.quality.quality"
  )
  assert script_of("taskset -c 1 python benchmarks/x.py --a=1") == "benchmarks/x.py"
  with pytest.raises(ValueError, match="does not run python"):
    script_of("bash run.sh")


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_recorded_command_names_a_script_that_exists(path):
  for command in _commands(json.loads(path.read_text(encoding="utf-8"))):
    script = script_of(command)
    if script.endswith(".py"):
      assert (REPO / script).is_file(), f"{path.name}: {command}"
    else:
      assert script.startswith("benchmarks."), f"{path.name}: {command}"
      spec = importlib.util.find_spec(script)
      assert spec is not None and spec.origin.startswith(str(REPO)), f"{path.name}: {command}"


def test_the_results_hold_recorded_commands():
  recorded = [c for p in RESULTS for c in _commands(json.loads(p.read_text(encoding="utf-8")))]
  assert len(recorded) >= 20  # the quality, time-to-quality, serving and scaling runs


def test_a_run_records_the_module_it_was_started_as(monkeypatch):
  monkeypatch.delenv("JAX_NUM_CPU_DEVICES", raising=False)
  assert (
    common.command_line("benchmarks.quality.quality", ["--name=a b"])
    == "python -m benchmarks.quality.quality '--name=a b'"
  )
  monkeypatch.setenv("JAX_NUM_CPU_DEVICES", "2")
  assert (
    common.command_line("benchmarks.data.scaling", [])
    == "JAX_NUM_CPU_DEVICES=2 python -m benchmarks.data.scaling"
  )
