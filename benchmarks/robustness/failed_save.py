"""How soon train.py ends after a checkpoint save fails, and what it says.

    python -m benchmarks.robustness.failed_save   # as root: drops to another user, mounts a tmpfs

Three tiny runs (tests/runs.py's TINY config), each in a new process: the checkpoints
folder made unwritable before the save of step 10 (the run drops to user 65534 with
setpriv, so that file permissions bind it), the workdir deleted before that save (both
through tests/save_faults.py), and a 640 KiB tmpfs that fills during a save. Each records
the exit status, the error line, the seconds from the broken workdir (where known) and
from the error line to the exit. Writes benchmarks/results/robustness/failed_save.json
with the hardware and the load.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common
from tests import runs

ROOT = common.ROOT

OUT = os.path.join(common.RESULTS, "robustness", "failed_save.json")


def timed_run(argv: list[str], env: dict) -> dict:
  """Runs argv; the exit status, the error line and the seconds to the exit from the
  broken workdir (the driver's "save_faults:" line) and from the error line."""
  started = time.monotonic()
  proc = subprocess.Popen(
    argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  broken_at = error_at = error = None
  for line in proc.stderr:
    if "save_faults:" in line:  # after a progress bar's carriage returns
      broken_at = time.monotonic()
    elif line.startswith("error:"):
      error_at, error = time.monotonic(), line.strip()
  proc.wait(timeout=600)
  ended = time.monotonic()
  since = lambda t: None if t is None else round(ended - t, 2)
  return {
    "status": proc.returncode,
    "error": error,
    "run_seconds": round(ended - started, 1),
    "broken_to_exit_seconds": since(broken_at),
    "error_line_to_exit_seconds": since(error_at),
  }


def owned_folder(parent: str, name: str) -> str:
  path = os.path.join(parent, name)
  os.mkdir(path)
  os.chown(path, 65534, 65534)
  return path


def main() -> int:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  record = {"runs": {}}
  with tempfile.TemporaryDirectory() as base:
    os.chmod(base, 0o755)
    workdir = owned_folder(base, "unwritable")
    record["runs"]["unwritable_checkpoints"] = timed_run(
      [
        *runs.UNPRIVILEGED,
        sys.executable,
        "-m",
        "tests.save_faults",
        "unwritable",
        "10",
        *runs._argv(workdir, {}),
      ],
      dict(env, JAX_COMPILATION_CACHE_DIR=owned_folder(base, "xla")),
    )
    record["runs"]["vanished_workdir"] = timed_run(
      [
        sys.executable,
        "-m",
        "tests.save_faults",
        "vanished",
        "10",
        *runs._argv(os.path.join(base, "vanished"), {}),
      ],
      env,
    )
    disk = os.path.join(base, "disk")
    os.mkdir(disk)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", disk], check=True)
    try:
      record["runs"]["full_disk"] = timed_run(
        [sys.executable, *runs._argv(disk, {"keep_checkpoints": 10, "step_log": False})], env
      )
    finally:
      subprocess.run(["umount", disk], check=True)
  record["hardware"] = common.hardware()
  common.write_json(OUT, record)
  print(json.dumps(record["runs"], indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
