"""The steps of the GPU run (benchmarks/gpu/run.sh) that have no script of their own.

    python -m benchmarks.gpu.steps environment --out env.json     # imports, versions, GPU
    python -m benchmarks.gpu.steps compare --out compare.json     # jaxseq vs PyTorch on CUDA
    python -m benchmarks.gpu.steps sweep --out sweep.json         # batch doubling
    python -m benchmarks.gpu.steps utilisation --config=configs/multi30k_de_en.py \\
        --config.batch_size=128 --workdir /tmp/util --out util.json   # log every step vs 100

The utilisation step reads its config as train.py does (`--config=FILE`, then
`--config.FIELD=VALUE` overrides). Each step writes one JSON file (`--out`); `--dry_run`
runs the same code at tiny sizes on the CPU, which is what tests/test_gpu_script.py checks.
A step that does several measurements rewrites its file after each one, so a step stopped
at its time budget keeps what it did.
"""

import argparse
import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from unittest import mock

from absl import flags

import train
from benchmarks import common

# Sizes of the dry run: every code path of the GPU run, compiled in about a second each.
TINY = {"hidden_size": 16, "embed_size": 16, "length": 8, "vocab_size": 64, "batch_size": 4}

# Distributions whose versions the record keeps (the first group is carried as wheels).
PACKAGES = (
  "tensorflow-datasets",
  "array-record",
  "grain",
  "ml-collections",
  "tensorboardX",
  "num2words",
  "importlib-resources",
  "protobuf",
  "etils",
  "jax",
  "jaxlib",
  "flax",
  "optax",
  "orbax-checkpoint",
  "numpy",
  "torch",
  "sentencepiece",
  "sacrebleu",
)


def _sizes(names: list[str], dry_run: bool) -> list[common.Size]:
  sizes = [common.SIZES[n] for n in names]
  return [dataclasses.replace(s, **TINY) for s in sizes] if dry_run else sizes


def gpu_name() -> tuple[str, str]:
  """(name of the accelerator, where it was read): nvidia-smi, else JAX's device kind."""
  if shutil.which("nvidia-smi"):
    done = subprocess.run(
      ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
      capture_output=True,
      text=True,
      timeout=30,
    )
    if done.returncode == 0 and done.stdout.strip():
      return done.stdout.strip().splitlines()[0], "nvidia-smi"
  import jax

  device = jax.devices()[0]
  if device.platform == "cpu":
    return f"cpu ({common.cpu_model()})", "jax"
  return device.device_kind, "jax"


def environment(args) -> dict:
  """Imports what the run needs (jaxseq's trainer pulls in tfds, grain, ...) and records
  the versions, where the carried packages were found, the devices and the GPU's name."""
  import jax
  import tensorflow_datasets
  import torch

  from jaxseq.training import trainer  # noqa: F401  (the import is the check)

  name, source = gpu_name()
  versions = {}
  for package in PACKAGES:
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  return {
    "device_name": name,
    "device_name_source": source,
    "jax_devices": [str(d) for d in jax.devices()],
    "jax_platform": jax.devices()[0].platform,
    "torch_cuda_available": torch.cuda.is_available(),
    "versions": {"python": sys.version.split()[0], **versions},
    "tensorflow_datasets_from": os.path.dirname(tensorflow_datasets.__file__),
    "pythonpath": os.environ.get("PYTHONPATH", ""),
    "hardware": common.hardware(),
  }


def compare(args) -> dict:
  """torch_reference.compare at the small and large sizes, PyTorch on args.device, jaxseq
  in float32 and bfloat16; the record is rewritten after each size."""
  from benchmarks.speed import torch_reference

  steps = 2 if args.dry_run else 10
  record = {"benchmark": "torch_reference", "device": args.device, "comparisons": []}
  # The dry run compiles the large (bidirectional) size only: each program costs seconds.
  for size in _sizes(["large"] if args.dry_run else ["small", "large"], args.dry_run):
    print(f"compare: {size.name} batch {size.batch_size} ...", flush=True)
    result = torch_reference.compare(
      size, steps, warmup=1 if args.dry_run else 2, device=args.device, bfloat16=True
    )
    print("  " + torch_reference.report(result), flush=True)
    record["comparisons"].append(result)
    record.update(hardware=common.hardware(), versions=common.versions())
    common.write_json(args.out, record)
  return record


def sweep(args) -> dict:
  """train_throughput.batch_sweep of the large size (the small one in the dry run)."""
  from benchmarks.speed import train_throughput

  if args.dry_run:  # batch 4 is the compare step's program: compiled once, then cached
    size, steps, cap = _sizes(["large"], True)[0], 2, 8
  else:
    size, steps, cap = common.SIZES["large"], 10, 16384
  result = train_throughput.batch_sweep(
    size, steps, max_batch=cap, budget_seconds=args.budget_seconds
  )
  return {
    "benchmark": "batch_sweep",
    "hardware": common.hardware(),
    "versions": common.versions(),
    **result,
  }


def load_config(path: str, overrides: list[str]):
  """The config of a config file with its --config.FIELD=VALUE overrides, read by train.py's
  own flag parsing (ml_collections config_flags)."""
  config, _ = train.parse(["steps", f"--config={path}", *overrides])
  return config


def _loop_rate(stamps: list[float]) -> dict:
  """Steps/s of a training loop from the times its steps were dispatched.

  With asynchronous dispatch the loop runs at the slower of the device and the host, so
  the interval between dispatches is the loop's real step time. Intervals over 10x the
  median are compilations (a new length bucket) and are left out of the mean; checkpoint
  saves (and their digest) stay in it.
  """
  intervals = [b - a for a, b in zip(stamps, stamps[1:])]
  median = common.median(intervals)
  kept = [x for x in intervals if x <= 10 * median]
  return {
    "step_seconds_median": median,
    "steps_per_second": 1 / median,
    "steps_per_second_mean": len(kept) / sum(kept),
    "intervals": len(intervals),
    "intervals_left_out": len(intervals) - len(kept),
  }


def _stamping(make_step, stamps: list[float]):
  """make_step (trainer._jit_train_step) whose step appends the time of each dispatch."""

  def make(model, config, mesh):
    step = make_step(model, config, mesh)

    def stamped(state, batch):
      out = step(state, batch)
      stamps.append(time.perf_counter())
      return out

    return stamped

  return make


def utilisation(args) -> dict:
  """The trainer's own loop (trainer.train_and_evaluate) with config.log_every_steps 100,
  then 1: every step's metrics read at once (the device waits for the host each step)
  against read one step late. The same steps, batches and checkpoint saves in both runs,
  no periodic evaluation, and a final evaluation cut to one output token (the limit is a
  traced argument: the compiled search is the Multi30k run's), so that the runs are the
  step loop and little else."""
  from jaxseq import quiet
  from jaxseq.data import tokenizers
  from jaxseq.training import trainer

  num_steps = args.steps
  save_every = max(num_steps // 4, 5)
  record = {
    "benchmark": "utilisation",
    "config_file": args.config,
    "num_steps": num_steps,
    "runs": [],
  }
  tokenizer_source = args.tokenizers_from
  for log_every in (100, 1):
    config = load_config(args.config, args.overrides)
    config.update_from_flattened_dict(
      {
        "num_train_steps": num_steps,
        "log_every_steps": log_every,
        "eval_every_steps": num_steps,
        "checkpoint_every_steps": save_every,
        "average_last_checkpoints": 0,
        "early_stopping_patience": 0,
        "num_samples": 0,
        "num_attention_plots": 0,
        "decode.max_length_ratio": 0.0,
        "decode.max_length_offset": 1,
      }
    )
    workdir = os.path.join(args.workdir, f"log_every_{log_every}")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    files = (tokenizers.SRC_FILE, tokenizers.TGT_FILE)
    if tokenizer_source and all(os.path.isfile(os.path.join(tokenizer_source, f)) for f in files):
      for f in files:  # the same tokenizers, not trained again
        shutil.copy(os.path.join(tokenizer_source, f), workdir)
    stamps = []
    print(f"utilisation: log_every_steps={log_every}, {num_steps} steps ...", flush=True)
    start = time.perf_counter()
    with (
      mock.patch.object(trainer, "_jit_train_step", _stamping(trainer._jit_train_step, stamps)),
      quiet.quiet_training(),
    ):
      summary = trainer.train_and_evaluate(config, workdir)
    run = {
      "log_every_steps": log_every,
      "checkpoint_every_steps": config.checkpoint_every_steps,
      "batch_size": config.batch_size,
      "steps": summary["steps"],
      "wall_seconds": time.perf_counter() - start,
      "trainer_tokens_per_second": summary["tokens_per_second"],
      **_loop_rate(stamps),
    }
    print(
      f"  {run['steps_per_second']:.1f} steps/s (median), "
      f"{run['steps_per_second_mean']:.1f} (mean)",
      flush=True,
    )
    record["runs"].append(run)
    tokenizer_source = workdir
    if len(record["runs"]) == 2:
      every, late = record["runs"][1], record["runs"][0]
      record["log_every_1_over_100"] = every["steps_per_second"] / late["steps_per_second"]
      record["log_every_1_over_100_mean"] = (
        every["steps_per_second_mean"] / late["steps_per_second_mean"]
      )
    record.update(hardware=common.hardware(), versions=common.versions())
    common.write_json(args.out, record)
  return record


STEPS = {"environment": environment, "compare": compare, "sweep": sweep, "utilisation": utilisation}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("step", choices=sorted(STEPS))
  parser.add_argument("--out", required=True, help="the step's JSON file")
  parser.add_argument("--dry_run", action="store_true", help="tiny sizes, for the CPU")
  parser.add_argument(
    "--device", choices=("cpu", "cuda"), default="cuda", help="compare: where PyTorch trains"
  )
  parser.add_argument("--budget_seconds", type=float, help="sweep: start no point after")
  parser.add_argument(
    "--config",
    help="utilisation: the config file of the Multi30k run, "
    "its fields overridden by --config.FIELD=VALUE as in train.py",
  )
  parser.add_argument("--steps", type=int, default=200, help="utilisation: steps of each run")
  parser.add_argument("--workdir", help="utilisation: where its runs' workdirs go")
  parser.add_argument(
    "--tokenizers_from",
    help="utilisation: a workdir whose tokenizers to reuse (the Multi30k run's)",
  )
  args, rest = parser.parse_known_args(argv)
  args.overrides = [a for a in rest if a.startswith("--config.")]
  unknown = [a for a in rest if not a.startswith("--config.")]
  if unknown:
    parser.error(
      f"unrecognized arguments: {' '.join(unknown)}; config fields are set with "
      "--config.FIELD=VALUE"
    )
  if args.step == "utilisation":
    try:
      load_config(args.config, args.overrides)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
      parser.error(f"--config {args.config} {' '.join(args.overrides)}: {' '.join(str(e).split())}")
  record = STEPS[args.step](args)
  common.write_json(args.out, record)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
