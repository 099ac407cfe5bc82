"""The whole benchmark suite, one command:

    python -m benchmarks.speed.run --out benchmarks/results/speed  # full (about 9 min on 2 cores)
    python -m benchmarks.speed.run --out /tmp/bench --quick        # a few minutes: checks it runs

Writes, under --out: suite.json (hardware, versions, the headline ratios against the
targets of the suite), torch_reference.json, train_throughput.json, and results.md
(the tables for the README). The PyTorch side needs the `bench` extra (torch).
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common
from benchmarks.speed import flops, train_throughput

TARGETS = {  # size -> least speedup over PyTorch eager, least fraction of the best matmul FLOP/s
  "small": {"speedup": 3.0},
  "large": {"speedup": 1.5, "matmul_fraction": 0.5},
}

HEADLINE_COLUMNS = [
  ("name", "size", "s"),
  ("hidden", "hidden", "d"),
  ("bidirectional", "bidir", "d"),
  ("batch", "batch", "d"),
  ("devices", "jax devices", "d"),
  ("params", "parameters", ",d"),
  ("jax_tokens", "jaxseq tokens/s", ",.0f"),
  ("torch_tokens", "PyTorch tokens/s", ",.0f"),
  ("speedup", "jaxseq / PyTorch", ".2f"),
  ("jax_gflops", "jaxseq GFLOP/s", ".1f"),
  ("fraction", "of jnp.dot rate", ".2f"),
  ("fraction_best", "of best matmul rate", ".2f"),
  ("first_loss_abs_diff", "first-loss diff", ".1e"),
]


def headline(quick: bool, out_dir: str) -> dict:
  """jaxseq vs PyTorch at the tutorial's and the large size, and the matmul limit."""
  from benchmarks.speed import torch_reference

  peak = flops.measure_matmul_flops()
  print(f"matmul: {peak['flops_per_second'] / 1e9:.1f} GFLOP/s", flush=True)
  steps = 3 if quick else 10
  sizes = [common.SIZES["small"], common.SIZES["large"]]
  if quick:  # the large model at a small batch: checks the code path, not the target
    sizes[1] = dataclasses.replace(sizes[1], batch_size=16)
  comparisons = []
  for size in sizes:
    print(f"torch_reference: {size.name} batch {size.batch_size} ...", flush=True)
    result = torch_reference.compare(size, steps)
    result["matmul_fraction"] = result["jaxseq_gflops"] * 1e9 / peak["flops_per_second"]
    print("  " + torch_reference.report(result), flush=True)
    comparisons.append(result)
  hardware = common.hardware()
  cores = hardware["usable_cores"] or hardware["cpu_cores"]
  if hardware["device_platform"] == "cpu" and cores > 1:
    # The small step leaves cores idle; data parallelism over one CPU device per core uses them.
    print(f"torch_reference: small on {cores} CPU devices ...", flush=True)
    result = compare_on_cpu_devices(sizes[0], steps, cores)
    result["matmul_fraction"] = result["jaxseq_gflops"] * 1e9 / peak["flops_per_second"]
    print("  " + torch_reference.report(result), flush=True)
    comparisons.append(result)
  peak_after = flops.measure_matmul_flops()  # the machine may have changed under us
  torch_matmul = torch_reference.measure_torch_matmul()
  # The machine's limit is the best dense matmul rate either library reached in this run.
  best = max(
    [
      peak["flops_per_second"],
      peak_after["flops_per_second"],
      *torch_matmul["flops_per_second_by_threads"].values(),
    ]
  )
  for result in comparisons:
    result["matmul_fraction_best"] = result["jaxseq_gflops"] * 1e9 / best
  record = {
    "benchmark": "torch_reference",
    "hardware": common.hardware(),
    "versions": common.versions(),
    "matmul": peak,
    "matmul_after": peak_after,
    "torch_matmul": torch_matmul,
    "best_matmul_flops_per_second": best,
    "comparisons": comparisons,
  }
  common.write_json(os.path.join(out_dir, "torch_reference.json"), record)
  return record


def compare_on_cpu_devices(size: common.Size, steps: int, devices: int) -> dict:
  """torch_reference.compare in a fresh process whose JAX has `devices` CPU devices."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "compare.json")
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "PYTHONPATH": common.ROOT}
    subprocess.run(
      [
        sys.executable,
        "-m",
        "benchmarks.speed.torch_reference",
        "--size",
        size.name,
        "--batch_size",
        str(size.batch_size),
        "--steps",
        str(steps),
        "--out",
        out,
      ],
      env=env,
      cwd=common.ROOT,
      check=True,
      timeout=3600,
    )
    with open(out) as f:
      return json.load(f)["result"]


def verdicts(comparisons: list[dict], xla_matmul_flops: float) -> list[dict]:
  """Each target against its measured value.

  A speedup target also gets what it asks of the step: the jaxseq GFLOP/s it implies
  (target x PyTorch's), as a fraction of XLA's own dense matmul rate in this run
  (`needs_of_jnp_dot`), next to the fraction reached (`reaches_of_jnp_dot`). At 1.0 or
  more, even a step made of nothing but matmuls at XLA's best rate would fall short.
  """
  found = []
  for c in comparisons:
    target = TARGETS.get(c["size"]["name"], {})
    for key, minimum in target.items():
      value = c["speedup"] if key == "speedup" else c["matmul_fraction_best"]
      entry = {
        "size": c["size"]["name"],
        "batch": c["size"]["batch_size"],
        "devices": c.get("devices", 1),
        "measure": key,
        "value": value,
        "target": minimum,
        "met": value >= minimum,
      }
      if key == "speedup":
        entry["needs_of_jnp_dot"] = minimum * c["torch_gflops"] * 1e9 / xla_matmul_flops
        entry["reaches_of_jnp_dot"] = c["jaxseq_gflops"] * 1e9 / xla_matmul_flops
      found.append(entry)
  return found


def describe(check: dict) -> str:
  """One target's line of results.md."""
  text = (
    f"{check['size']} batch {check['batch']} on {check['devices']} jax device(s) "
    f"{check['measure']} {check['value']:.2f} "
    f"(>= {check['target']}: {'met' if check['met'] else 'not met'}"
  )
  if "needs_of_jnp_dot" in check:
    text += (
      f"; it needs the step to run at {check['needs_of_jnp_dot']:.2f} of the jnp.dot "
      f"rate, it runs at {check['reaches_of_jnp_dot']:.2f}"
    )
  return text + ")"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=common.RESULTS)
  parser.add_argument("--quick", action="store_true", help="few steps, small sweeps")
  parser.add_argument("--skip_sweeps", action="store_true", help="only the PyTorch comparison")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  started = time.time()
  head = headline(args.quick, args.out)
  sweeps = None if args.skip_sweeps else train_throughput.run(args.out, args.quick)
  xla_best = max(head["matmul"]["flops_per_second"], head["matmul_after"]["flops_per_second"])
  checks = verdicts(head["comparisons"], xla_best)
  suite = {
    "hardware": head["hardware"],
    "versions": head["versions"],
    "quick": args.quick,
    "matmul_gflops": head["matmul"]["flops_per_second"] / 1e9,
    "best_matmul_gflops": head["best_matmul_flops_per_second"] / 1e9,
    "targets": checks,
    "seconds": time.time() - started,
  }
  common.write_json(os.path.join(args.out, "suite.json"), suite)

  hw = head["hardware"]
  rows = [
    {
      "name": c["size"]["name"],
      "hidden": c["size"]["hidden_size"],
      "bidirectional": int(c["size"]["bidirectional"]),
      "batch": c["size"]["batch_size"],
      "devices": c.get("devices", 1),
      "params": c["jaxseq"]["num_params"],
      "jax_tokens": c["jaxseq"]["tokens_per_second"],
      "torch_tokens": c["torch"]["tokens_per_second"],
      "speedup": c["speedup"],
      "jax_gflops": c["jaxseq_gflops"],
      "fraction": c["matmul_fraction"],
      "fraction_best": c["matmul_fraction_best"],
      "first_loss_abs_diff": c["first_loss_abs_diff"],
    }
    for c in head["comparisons"]
  ]
  lines = [
    f"Hardware: {hw['cpu_model']}, {hw['cpu_cores']} cores, device {hw['device_kind']} "
    f"({hw['device_platform']}); load average at the end {hw['load_average_1min']:.1f}; "
    f"jax {head['versions']['jax']}, torch {head['versions']['torch']}"
    + (" (quick run: few steps, not for publication)" if args.quick else ""),
    "",
    f"Measured float32 matmul (jnp.dot, 2048^2): {suite['matmul_gflops']:.1f} GFLOP/s; "
    "PyTorch's torch.mm on the same matrices: "
    + ", ".join(
      f"{rate / 1e9:.1f} GFLOP/s on {threads} thread(s)"
      for threads, rate in head["torch_matmul"]["flops_per_second_by_threads"].items()
    )
    + "; "
    f"jnp.dot at the end: {head['matmul_after']['flops_per_second'] / 1e9:.1f} GFLOP/s. "
    "The FLOP target is checked against the best of these.",
    "",
    common.markdown_table(rows, HEADLINE_COLUMNS),
    "",
    "Targets: " + "; ".join(describe(c) for c in checks) + ". The jnp.dot rate is the "
    "better of its two measurements; the step's rate counts its matmul FLOPs only.",
  ]
  if sweeps is not None:
    lines += [
      "",
      "Training throughput sweeps (jaxseq, medians after warm-up):",
      "",
      common.markdown_table(
        train_throughput.table_rows(sweeps["results"]), train_throughput.COLUMNS
      ),
    ]
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {args.out}/results.md and JSON ({time.time() - started:.0f} s)")


if __name__ == "__main__":
  main()
