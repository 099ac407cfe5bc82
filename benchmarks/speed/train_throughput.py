"""Training throughput of jaxseq: tokens/s, steps/s, compile time and peak memory.

Each measurement runs in its own process, so that peak memory is that measurement's
own and the device count can be set (JAX_NUM_CPU_DEVICES) before JAX starts. The step
is the trainer's own: jit with shardings and donation, batch sharded over a 1-D mesh.
Compilation is timed separately (lower + compile) and excluded; every timed step is
synchronised with block_until_ready; medians are reported.

    python -m benchmarks.speed.train_throughput --out benchmarks/results [--quick]
    python -m benchmarks.speed.train_throughput --batch_sweep large --out /tmp/sweep  # on a GPU

`--batch_sweep SIZE` doubles that size's batch, in this one process, until tokens/s grows
by less than 5% (`batch_sweep`), and writes batch_sweep.json under --out.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

from benchmarks import common
from benchmarks.speed import flops


def train_config(size: common.Size, dtype: str = "float32", scan_unroll: int = 1):
  """The trainer config of a benchmark: constant learning rate, Adam, clipping at 1."""
  from configs import default

  config = default.get_config()
  config.model = size.model_config(dtype, scan_unroll)
  config.batch_size = size.batch_size
  config.learning_rate = 1e-3
  config.lr_schedule = "constant"
  config.warmup_steps = 0
  return config


def build(size: common.Size, dtype: str = "float32", scan_unroll: int = 1):
  """(model, initial state, compiled-on-first-use train step, mesh) for one size."""
  import jax

  from jaxseq.model import seq2seq
  from jaxseq.training import parallel, steps, trainer

  config = train_config(size, dtype, scan_unroll)
  model = seq2seq.from_config(config.model, size.vocab_size, size.vocab_size)
  mesh = parallel.make_mesh()
  state = parallel.init_replicated(
    lambda: steps.create_train_state(model, config, jax.random.key(config.seed)), mesh
  )
  return model, state, trainer._jit_train_step(model, config, mesh), mesh


def measure(
  size: common.Size, num_steps: int, warmup: int = 2, dtype: str = "float32", scan_unroll: int = 1
) -> dict:
  """Trains `num_steps` timed steps (after `warmup`) on fixed synthetic batches."""
  import jax

  from jaxseq.training import parallel

  _, state, train_step, mesh = build(size, dtype, scan_unroll)
  batches = common.make_batches(size, warmup + num_steps)
  start = time.perf_counter()
  compiled = train_step.lower(state, parallel.shard_batch(batches[0], mesh)).compile()
  compile_seconds = time.perf_counter() - start
  losses = []

  def one_step(i):
    nonlocal state
    state, metrics = compiled(state, parallel.shard_batch(batches[i], mesh))
    jax.block_until_ready((state, metrics))
    losses.append(float(metrics["loss"]) / float(metrics["tokens"]))

  for i in range(warmup):
    one_step(i)
  times = common.time_calls(lambda i: one_step(warmup + i), num_steps)
  # Reading the loss is inside the timed call; it is a scalar already computed.
  step_seconds = common.median(times)
  tokens = [common.target_tokens(b) for b in batches[warmup:]]
  memory = jax.devices()[0].memory_stats() or {}
  train_flops = flops.train_step_flops(size)
  return {
    "size": dataclasses.asdict(size),
    "dtype": dtype,
    "scan_unroll": scan_unroll,
    "devices": jax.device_count(),
    "device_kind": jax.devices()[0].device_kind,
    "num_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
    "compile_seconds": compile_seconds,
    "step_seconds_median": step_seconds,
    "step_seconds_all": times,
    "steps_per_second": 1.0 / step_seconds,
    "tokens_per_second": common.median(tokens) / step_seconds,
    "train_step_gflop": train_flops / 1e9,
    "achieved_gflops": train_flops / step_seconds / 1e9,
    "peak_rss_mib": common.peak_rss_mib(),
    "device_peak_bytes": memory.get("peak_bytes_in_use"),
    "loss_first": losses[0],
    "loss_last": losses[-1],
  }


def run_in_subprocess(spec: dict, num_devices: int = 1, timeout: int = 1800) -> dict:
  """One `measure(**spec)` in a fresh process with `num_devices` CPU devices."""
  env = {**os.environ, "PYTHONPATH": common.ROOT, "JAX_NUM_CPU_DEVICES": str(num_devices)}
  done = subprocess.run(
    [sys.executable, "-m", "benchmarks.speed.train_throughput", "--worker", json.dumps(spec)],
    env=env,
    cwd=common.ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  if done.returncode != 0:
    return {"spec": spec, "devices": num_devices, "error": done.stderr.strip()[-2000:]}
  return json.loads(done.stdout.strip().splitlines()[-1])


def plan(quick: bool) -> list[tuple[str, dict, int]]:
  """(sweep, measure() arguments, device count) for every measurement of the suite."""
  steps = 3 if quick else 10
  small, medium, large = (dataclasses.asdict(common.SIZES[k]) for k in ("small", "medium", "large"))
  runs = [
    ("sizes", {"size": s, "num_steps": steps}, 1)
    for s in ((small, medium) if quick else (small, medium, large))
  ]
  for batch in (8, 128) if quick else (8, 16, 64, 128):
    runs.append(("batch_size", {"size": {**small, "batch_size": batch}, "num_steps": steps}, 1))
  for length in (32,) if quick else (8, 32, 64):
    runs.append(("length", {"size": {**small, "length": length}, "num_steps": steps}, 1))
  for hidden in (256,) if quick else (64, 256, 512):
    runs.append(
      (
        "hidden_size",
        {"size": {**small, "hidden_size": hidden, "embed_size": hidden}, "num_steps": steps},
        1,
      )
    )
  for devices in (2, 4) if quick else (2, 4, 8):
    runs.append(("devices", {"size": medium, "num_steps": steps}, devices))
  for unroll in (4,) if quick else (2, 4, 8):
    runs.append(("scan_unroll", {"size": small, "num_steps": steps, "scan_unroll": unroll}, 1))
  runs.append(("dtype", {"size": small, "num_steps": steps, "dtype": "bfloat16"}, 1))
  return runs


COLUMNS = [
  ("sweep", "sweep", "s"),
  ("name", "size", "s"),
  ("hidden", "hidden", "d"),
  ("bidirectional", "bidir", "d"),
  ("batch", "batch", "d"),
  ("length", "len", "d"),
  ("devices", "devices", "d"),
  ("dtype", "dtype", "s"),
  ("scan_unroll", "unroll", "d"),
  ("tokens_per_second", "tokens/s", ",.0f"),
  ("steps_per_second", "steps/s", ".2f"),
  ("compile_seconds", "compile s", ".1f"),
  ("peak_rss_mib", "peak RSS MiB", ",.0f"),
  ("achieved_gflops", "GFLOP/s", ".1f"),
]


def table_rows(results: list[dict]) -> list[dict]:
  rows = []
  for r in results:
    if "error" in r:
      continue
    s = r["size"]
    rows.append(
      {
        **r,
        "name": s["name"],
        "hidden": s["hidden_size"],
        "bidirectional": int(s["bidirectional"]),
        "batch": s["batch_size"],
        "length": s["length"],
      }
    )
  return rows


def run(out_dir: str, quick: bool) -> dict:
  results = []
  for sweep, spec, devices in plan(quick):
    print(f"train_throughput: {sweep} {spec['size']['name']} devices={devices} ...", flush=True)
    result = run_in_subprocess(spec, devices)
    result["sweep"] = sweep
    results.append(result)
    if "error" in result:
      print(f"  failed: {result['error'].splitlines()[-1]}", flush=True)
    else:
      print(f"  {result['tokens_per_second']:,.0f} tokens/s", flush=True)
  record = {
    "benchmark": "train_throughput",
    "hardware": common.hardware(),
    "versions": common.versions(),
    "quick": quick,
    "config": train_config(common.SIZES["small"]).to_dict(),
    "results": results,
  }
  common.write_json(os.path.join(out_dir, "train_throughput.json"), record)
  with open(os.path.join(out_dir, "train_throughput.md"), "w") as f:
    f.write(common.markdown_table(table_rows(results), COLUMNS) + "\n")
  return record


def batch_sweep(
  size: common.Size,
  num_steps: int = 10,
  max_batch: int = 16384,
  min_gain: float = 0.05,
  budget_seconds: float | None = None,
) -> dict:
  """Doubles size's batch until tokens/s grows by less than min_gain, or max_batch.

  Every point is a `measure` in this process (compilation excluded). The sweep also
  stops at the first failed point (out of device memory, say) and, once budget_seconds
  have passed, before starting a point; `stop_reason` says which rule ended it:
  "gain", "cap", "error" or "budget".
  """
  start = time.perf_counter()
  points, batch, reason = [], size.batch_size, "cap"
  while batch <= max_batch:
    if budget_seconds is not None and time.perf_counter() - start > budget_seconds:
      reason = "budget"
      break
    try:
      point = measure(dataclasses.replace(size, batch_size=batch), num_steps)
    except Exception as e:  # noqa: BLE001  (e.g. out of device memory: the sweep's end)
      points.append({"batch_size": batch, "error": f"{type(e).__name__}: {e}"[:2000]})
      reason = "error"
      break
    point["batch_size"] = batch
    if points:
      point["gain"] = point["tokens_per_second"] / points[-1]["tokens_per_second"] - 1
    points.append(point)
    print(
      f"batch_sweep: batch {batch}: {point['tokens_per_second']:,.0f} tokens/s"
      + (f" ({point['gain']:+.1%})" if "gain" in point else ""),
      flush=True,
    )
    if point.get("gain", min_gain) < min_gain:
      reason = "gain"
      break
    batch *= 2
  measured = [p for p in points if "error" not in p]
  best = max(measured, key=lambda p: p["tokens_per_second"]) if measured else None
  return {
    "size": dataclasses.asdict(size),
    "num_steps": num_steps,
    "max_batch": max_batch,
    "min_gain": min_gain,
    "budget_seconds": budget_seconds,
    "stop_reason": reason,
    "best_batch_size": best and best["batch_size"],
    "best_tokens_per_second": best and best["tokens_per_second"],
    "seconds": time.perf_counter() - start,
    "points": points,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=common.RESULTS)
  parser.add_argument("--quick", action="store_true", help="few steps and sweep points")
  parser.add_argument("--worker", help=argparse.SUPPRESS)  # one measure() spec, as JSON
  parser.add_argument(
    "--batch_sweep",
    choices=sorted(common.SIZES),
    help="only double this size's batch until tokens/s stops growing",
  )
  parser.add_argument("--max_batch", type=int, default=16384, help="--batch_sweep's cap")
  parser.add_argument("--budget_seconds", type=float, help="--batch_sweep: start no point after")
  args = parser.parse_args(argv)
  if args.worker:
    spec = json.loads(args.worker)
    spec["size"] = common.Size(**spec["size"])
    print(json.dumps(measure(**spec)))
    return
  if args.batch_sweep:
    sweep = batch_sweep(
      common.SIZES[args.batch_sweep],
      3 if args.quick else 10,
      args.max_batch,
      budget_seconds=args.budget_seconds,
    )
    common.write_json(
      os.path.join(args.out, "batch_sweep.json"),
      {
        "benchmark": "batch_sweep",
        "hardware": common.hardware(),
        "versions": common.versions(),
        **sweep,
      },
    )
    return
  run(args.out, args.quick)


if __name__ == "__main__":
  main()
