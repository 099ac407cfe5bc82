"""Start-up time of jaxseq-translate: a trained workdir against its exported artifact.

    python train.py --workdir=/tmp/default && \
    jaxseq-export --workdir=/tmp/default --out=/tmp/default_export && \
    python -m benchmarks.serving.startup --workdir=/tmp/default --artifact=/tmp/default_export

Each measurement is one whole command in a new process, translating one sentence, timed
from start to exit (imports, loading, compilation, the translation). The artifact is timed
first with an empty compilation cache (its first start on a machine) and then with the cache
its first start left (every later start); the workdir path has no cache. Writes
benchmarks/results/serving/startup.json with the hardware and the load.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import common


def timed(argv: list[str], env: dict) -> float:
  started = time.perf_counter()
  proc = subprocess.run(
    [sys.executable, "-m", "jaxseq.serving.translate", *argv],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  if proc.returncode != 0:
    raise SystemExit(f"error: {' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
  return time.perf_counter() - started


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--artifact", required=True)
  parser.add_argument("--sentence", default="three hundred and twelve")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=os.path.join(common.RESULTS, "serving", "startup.json"))
  args = parser.parse_args(argv)
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  env["PYTHONPATH"] = common.ROOT
  with tempfile.TemporaryDirectory() as cache:
    env["JAXSEQ_XLA_CACHE"] = cache
    artifact = [f"--artifact={args.artifact}", args.sentence]
    cold = timed(artifact, env)  # fills the cache
    warm, workdir = [], []
    for _ in range(args.repeats):  # interleaved, so that a change of load hits both
      warm.append(timed(artifact, env))
      workdir.append(timed([f"--workdir={args.workdir}", args.sentence], env))
  record = {
    "command": common.command_line("benchmarks.serving.startup", argv),
    "workdir_seconds": workdir,
    "artifact_cold_cache_seconds": cold,
    "artifact_seconds": warm,
    "median": {"workdir": statistics.median(workdir), "artifact": statistics.median(warm)},
    "artifact_over_workdir": statistics.median(warm) / statistics.median(workdir),
    "hardware": common.run_hardware(),
  }
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=2)
  print(
    json.dumps(record["median"]),
    f"ratio {record['artifact_over_workdir']:.2f}",
    f"(artifact's first start: {cold:.1f} s)",
  )
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
