"""Start-up, memory and pipeline throughput of training as the corpus grows.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.data.scaling \
        --sizes=100000,1000000,5000000 --work=/tmp/jaxseq_scaling

For each size N it writes a Multi30k-layout corpus whose training split is N pairs: the
Multi30k training pairs repeated, each copy marked by its number on both sides ("... (12)"),
with the real validation and test splits beside them. Each measurement is a fresh process
running the training path of configs/multi30k_de_en_fast.py (`jaxseq.training.trainer.start`, then
train steps):
  cold  empty TFDS directory and compilation cache: the array_record preparation and the
        compilation of the train step are part of the time;
  warm  the prepared data and compiled steps kept from the cold run (what train.py keeps
        on disk between runs), a new workdir (tokenizers trained again).
Each reports the seconds from process start to the end of the first train step, the peak
RSS after the train steps, the examples per second the train step consumes (steps 2-11),
and then the examples per second of the input pipeline alone (no train step). Writes
benchmarks/results/scaling/scaling.json with the hardware and the load average, and
scaling.png.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

STARTED = time.time()  # the child's clock starts before its imports
from benchmarks import common  # noqa: E402  (after the clock starts)

RESULTS = os.path.join(common.RESULTS, "scaling")
CONFIG = "configs/multi30k_de_en_fast.py"


def write_corpus(raw_dir: str, source_dir: str, size: int):
  """raw_dir/multi30k/: train.{de,en} of size pairs (Multi30k's, repeated and marked), the
  other splits linked from source_dir."""
  out = os.path.join(raw_dir, "multi30k")
  os.makedirs(out, exist_ok=True)
  for name in os.listdir(source_dir):
    if not name.startswith("train."):
      target = os.path.join(out, name)
      if not os.path.exists(target):
        os.symlink(os.path.join(source_dir, name), target)
  for lang in ("de", "en"):
    with open(os.path.join(source_dir, f"train.{lang}"), encoding="utf-8") as f:
      lines = f.read().splitlines()
    with open(os.path.join(out, f"train.{lang}"), "w", encoding="utf-8") as f:
      for i in range(size):
        copy, line = divmod(i, len(lines))
        f.write(f"{lines[line]} ({copy})\n" if copy else lines[line] + "\n")


def rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(args) -> dict:
  """One measurement in this fresh process (see the module docstring)."""
  import jax
  import numpy as np

  from configs import multi30k_de_en_fast
  from jaxseq.serving import artifact
  from jaxseq.training import parallel, trainer

  artifact.use_compilation_cache()  # as train.py does ($JAXSEQ_XLA_CACHE, set by measure)
  config = multi30k_de_en_fast.get_config()
  config.data_dir, config.tfds_dir = args.raw_dir, args.tfds_dir
  config.num_train_steps = 10**6
  run, state, batches, train_step = trainer.start(config, args.workdir)
  try:
    state, metrics = train_step(state, parallel.shard_batch(next(batches), run.mesh))
    jax.block_until_ready(metrics)
    first_step = time.time() - STARTED
    compiled, steps, seconds = set(), 0, 0.0
    while steps < args.train_steps:  # steady state: only buckets already compiled are timed
      batch = next(batches)
      start = time.perf_counter()
      state, metrics = train_step(state, parallel.shard_batch(batch, run.mesh))
      jax.block_until_ready(metrics)
      if batch["src"].shape in compiled:
        steps, seconds = steps + 1, seconds + time.perf_counter() - start
      compiled.add(batch["src"].shape)
    rss_training = rss_mib()
    for _ in range(20):  # the pipeline alone: its buffers full, then timed
      next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.pipeline_seconds:
      count += int(np.count_nonzero(next(batches)["src"][:, 0]))
    pipeline = count / (time.perf_counter() - start)
  finally:
    trainer.close_run(run)
  return {
    "first_step_seconds": round(first_step, 2),
    "train_examples_per_s": round(steps * config.batch_size / seconds, 1),
    "pipeline_examples_per_s": round(pipeline, 1),
    "peak_rss_mib": round(rss_training, 1),
    "peak_rss_mib_end": round(rss_mib(), 1),
    "train_pairs": len(run.corpus.train),
    "devices": jax.device_count(),
  }


def measure(args, size: int, kind: str) -> dict:
  """One fresh child process; its JSON line."""
  base = os.path.join(args.work, str(size))
  workdir = os.path.join(base, f"workdir_{kind}")
  shutil.rmtree(workdir, ignore_errors=True)
  if kind == "cold":  # nothing prepared, nothing compiled
    for name in ("tfds", "xla"):
      shutil.rmtree(os.path.join(base, name), ignore_errors=True)
  command = [
    sys.executable,
    "-m",
    "benchmarks.data.scaling",
    "--child",
    f"--raw_dir={os.path.join(base, 'raw')}",
    f"--tfds_dir={os.path.join(base, 'tfds')}",
    f"--workdir={workdir}",
    f"--train_steps={args.train_steps}",
    f"--pipeline_seconds={args.pipeline_seconds}",
  ]
  load = os.getloadavg()[0]
  env = dict(os.environ, JAXSEQ_XLA_CACHE=os.path.join(base, "xla"))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT, env=env)
  if proc.returncode:
    sys.exit(f"error: the {kind} run of {size:,} pairs failed:\n{proc.stderr[-3000:]}")
  record = json.loads(proc.stdout.strip().splitlines()[-1])
  record["load_average_1min_at_start"] = round(load, 2)
  print(f"{size:>9,} {kind}: {record}", flush=True)
  return record


def plot(sizes: list[int], records: dict, path: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
  for kind, style in (("cold", "o--"), ("warm", "o-")):
    left.plot(
      sizes,
      [records[str(n)][kind]["first_step_seconds"] for n in sizes],
      style,
      label=f"{kind} (data {'prepared in the run' if kind == 'cold' else 'cached'})",
    )
    right.plot(sizes, [records[str(n)][kind]["peak_rss_mib"] for n in sizes], style, label=kind)
  left.set(xscale="log", xlabel="training pairs", ylabel="s to the first step", ylim=(0, None))
  right.set(xscale="log", xlabel="training pairs", ylabel="peak RSS (MiB)", ylim=(0, None))
  left.legend(fontsize=8)
  right.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="100000,1000000,5000000")
  parser.add_argument("--work", default="/tmp/jaxseq_scaling", help="corpora, TFDS data, workdirs")
  parser.add_argument(
    "--data_dir",
    default=os.environ.get("JAXSEQ_DATA_DIR", os.path.join(common.ROOT, "..", "shared", "data")),
  )
  parser.add_argument("--train_steps", type=int, default=10)
  parser.add_argument("--pipeline_seconds", type=float, default=15.0)
  parser.add_argument("--out", default=RESULTS)
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--raw_dir", help=argparse.SUPPRESS)
  parser.add_argument("--tfds_dir", help=argparse.SUPPRESS)
  parser.add_argument("--workdir", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(child(args)))
    return 0

  sizes = [int(n) for n in args.sizes.split(",")]
  records = {}
  for size in sizes:
    started = time.time()
    write_corpus(
      os.path.join(args.work, str(size), "raw"), os.path.join(args.data_dir, "multi30k"), size
    )
    print(f"{size:,} pairs written in {time.time() - started:.0f} s", flush=True)
    records[str(size)] = {kind: measure(args, size, kind) for kind in ("cold", "warm")}
  warm = [records[str(n)]["warm"] for n in sizes]
  result = {
    "config": CONFIG,
    "sizes": sizes,
    "runs": records,
    "warm_first_step_ratio_largest_to_smallest": round(
      warm[-1]["first_step_seconds"] / warm[0]["first_step_seconds"], 2
    ),
    "warm_peak_rss_ratio_largest_to_smallest": round(
      warm[-1]["peak_rss_mib"] / warm[0]["peak_rss_mib"], 2
    ),
    "pipeline_to_train_ratio_largest": round(
      warm[-1]["pipeline_examples_per_s"] / warm[-1]["train_examples_per_s"], 1
    ),
    "command": common.command_line("benchmarks.data.scaling", argv),
    "hardware": common.run_hardware(),
  }
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "scaling.json"), "w") as f:
    json.dump(result, f, indent=2)
  plot(sizes, records, os.path.join(args.out, "scaling.png"))
  print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
