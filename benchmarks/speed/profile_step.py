"""Where the time of one train step goes: a trace profile grouped by model part and op kind.

    python -m benchmarks.speed.profile_step --size small \
        --out benchmarks/results/speed/profile_small.json

Traces a few steps of the benchmark train step (the trainer's own jit, as in
train_throughput.py) with `jax.profiler`, reads the Chrome trace it writes, and sums the
time of every compiled HLO op by what the op's JAX name says it belongs to:

  phase: forward (jvp), backward (transpose) or update (the optimizer and the rest);
  part:  encoder, decoder loop, readout and output layer, loss, or other;
  kind:  matmul, per-step weight-gradient matmul (a dot inside a backward loop that JAX
         names `transpose`: the product giving a weight's gradient at that step, whereas
         the product passing the gradient on is a `dot_general`), gradient accumulation
         (add_any), loop residuals
         (dynamic slices and updates: values stored by the forward loop for the backward
         one), or elementwise and the rest.

Times are op times per step summed over threads, so their total can differ from the wall
time of the step, which is reported next to it. The top ops are listed too.
"""

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import re
import tempfile
import time

from benchmarks import common
from benchmarks.speed import train_throughput

# (a piece of the JAX op name, the part it marks), the first match wins; "jvp()" is the
# loss, traced outside every vmap (its backward is "transpose(jvp())").
PARTS = (
  ("Seq2Seq.encode", "encoder"),
  ("/while", "decoder loop"),
  ("Seq2Seq.logits", "readout and output"),
  ("jvp()", "loss"),
)


def _hlo_names(compiled_text: str) -> dict[str, tuple[str, str]]:
  """HLO instruction name -> (its opcode, the JAX op name in its metadata)."""
  names = {}
  for line in compiled_text.splitlines():
    found = re.match(r'\s*(?:ROOT )?%(\S+) = \S+ ([\w-]+)\(.*?op_name="([^"]*)"', line)
    if found:
      op, opcode, op_name = found.groups()
      names[op] = opcode, op_name.replace("jit(train_step)/", "", 1)
  return names


def classify(opcode: str, op_name: str) -> tuple[str, str, str]:
  """(phase, part, kind) of one op from its HLO opcode and JAX op name."""
  phase = (
    "backward"
    if op_name.startswith("transpose(")
    else "forward"
    if op_name.startswith("jvp(")
    else "update"
  )
  part = next((label for key, label in PARTS if key in op_name), "other")
  if phase == "update":
    part = "optimizer and other"
  last = op_name.rsplit("/", 1)[-1]
  in_loop = "/while/body" in op_name
  if last in ("dynamic_update_slice", "dynamic_slice"):
    kind = "loop residuals"
  elif last == "add_any":
    kind = "gradient accumulation"
  elif phase == "backward" and in_loop and last == "transpose" and opcode == "dot":
    kind = "per-step weight-gradient matmul"
  elif last == "dot_general":
    kind = "matmul"
  else:
    kind = "elementwise and other"
  return phase, part, kind


def profile(size: common.Size, num_steps: int, top: int) -> dict:
  import jax

  from jaxseq.training import parallel

  _, state, train_step, mesh = train_throughput.build(size)
  batch = parallel.shard_batch(common.make_batches(size, 1)[0], mesh)
  compiled = train_step.lower(state, batch).compile()
  names = _hlo_names(compiled.as_text())
  for _ in range(3):  # warm up
    state, metrics = compiled(state, batch)
  jax.block_until_ready(state)
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    start = time.perf_counter()
    for _ in range(num_steps):
      state, metrics = compiled(state, batch)
      jax.block_until_ready(state)
    wall = (time.perf_counter() - start) / num_steps
    jax.profiler.stop_trace()
    trace_file = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
    with gzip.open(trace_file) as f:
      events = json.load(f)["traceEvents"]
  per_op = collections.Counter()
  for event in events:
    if event.get("ph") == "X" and event.get("name") in names:
      per_op[event["name"]] += event["dur"] / 1e3 / num_steps  # ms per step
  groups = {key: collections.Counter() for key in ("phase", "part", "kind")}
  for op, ms in per_op.items():
    for key, value in zip(groups, classify(*names[op])):
      groups[key][value] += ms
  return {
    "benchmark": "profile_step",
    "hardware": common.hardware(),
    "versions": common.versions(),
    "size": dataclasses.asdict(size),
    "traced_steps": num_steps,
    "step_ms_wall": wall * 1e3,
    "op_ms_total": sum(per_op.values()),
    **{f"ms_by_{key}": dict(counter.most_common()) for key, counter in groups.items()},
    "top_ops": [
      {"op": op, "opcode": names[op][0], "jax_name": names[op][1], "ms": ms}
      for op, ms in per_op.most_common(top)
    ],
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="small", choices=sorted(common.SIZES))
  parser.add_argument("--steps", type=int, default=5, help="traced steps (after 3 warm-up)")
  parser.add_argument("--top", type=int, default=15, help="ops listed one by one")
  parser.add_argument("--out", help="write the JSON record here")
  args = parser.parse_args(argv)
  record = profile(common.SIZES[args.size], args.steps, args.top)
  print(
    f"{args.size}: {record['step_ms_wall']:.1f} ms a step (wall), "
    f"{record['op_ms_total']:.1f} ms of op time"
  )
  for key in ("phase", "part", "kind"):
    shares = record[f"ms_by_{key}"]
    print(
      f"  by {key}: "
      + ", ".join(
        f"{name} {ms:.1f} ({ms / record['op_ms_total']:.0%})" for name, ms in shares.items()
      )
    )
  if args.out:
    common.write_json(args.out, record)


if __name__ == "__main__":
  main()
