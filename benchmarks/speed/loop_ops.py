"""The operations inside every while loop of the compiled train step and beam search.

    python -m benchmarks.speed.loop_ops --out benchmarks/results/speed/loop_ops.json

Every operation left inside a `lax.scan` or `lax.while_loop` body runs once per time step:
on a CPU each is a call into a compiled kernel, on a GPU at least one kernel launch (XLA
cannot fuse across iterations). This counts them in the optimised HLO that XLA compiles
for this machine, loop by loop, for the benchmark sizes (benchmarks/common.py):

  dots:        matrix products (a `dot`, or a fusion whose computation holds one),
  fusions:     other fused kernels (elementwise work, slices, reductions),
  other:       every other instruction that does work (copies, concatenations, ...),

leaving out what costs nothing at run time (parameters, constants, tuples and their
elements, bitcasts). A loop is named by the JAX operation that made it: its phase
(forward, or backward for `transpose(...)`) and its part (the encoder, the decoder).
Counts are per loop iteration, which is one time step (scan_unroll=1).
"""

import argparse
import collections
import dataclasses
import re

from benchmarks import common
from benchmarks.speed import train_throughput

FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}
_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%\S+ = .*? ([\w-]+)\(")


def computations(hlo_text: str) -> dict[str, list[str]]:
  """The instruction lines of every computation of an HLO module's text, by name."""
  found, current = {}, None
  for line in hlo_text.splitlines():
    header = _HEADER.match(line)
    if header and not line.startswith(" "):
      current = header.group(1)
      found[current] = []
    elif line.startswith("}"):
      current = None
    elif current is not None:
      found[current].append(line)
  return found


def _opcode(line: str) -> str | None:
  match = _INSTRUCTION.match(line)
  return match.group(1) if match else None


def _holds_dot(name: str, comps: dict[str, list[str]], seen=None) -> bool:
  seen = set() if seen is None else seen
  if name in seen or name not in comps:
    return False
  seen.add(name)
  for line in comps[name]:
    if _opcode(line) in ("dot", "convolution"):
      return True
    called = re.search(r"calls=%?([\w.\-]+)", line)
    if called and _holds_dot(called.group(1), comps, seen):
      return True
  return False


def count_body(body: str, comps: dict[str, list[str]]) -> dict[str, int]:
  """{dots, fusions, other} of the instructions of one loop body."""
  counts = collections.Counter(dots=0, fusions=0, other=0)
  for line in comps[body]:
    opcode = _opcode(line)
    if opcode is None or opcode in FREE:
      continue
    if opcode in ("dot", "convolution"):
      counts["dots"] += 1
    elif opcode == "fusion":
      called = re.search(r"calls=%?([\w.\-]+)", line)
      dot = "__ynn_fusion" in line or (called and _holds_dot(called.group(1), comps))
      counts["dots" if dot else "fusions"] += 1
    else:
      counts["other"] += 1
  return dict(counts)


def loop_label(op_name: str) -> str:
  """`forward encoder`, `backward decoder`, ... from the JAX name of a while op."""
  name = op_name.split("/", 1)[-1]
  phase = "backward" if "transpose(" in name else "forward"
  part = "encoder" if "encode" in name else "decoder"
  return f"{phase} {part}"


def loops(hlo_text: str) -> list[dict]:
  """One record per while loop: its label, its JAX name and the counts of its body."""
  comps = computations(hlo_text)
  found = []
  for lines in comps.values():
    for line in lines:
      if _opcode(line) != "while":
        continue
      body = re.search(r"body=%?([\w.\-]+)", line).group(1)
      op_name = re.search(r'op_name="([^"]*)"', line)
      name = op_name.group(1) if op_name else ""
      counts = count_body(body, comps)
      found.append(
        {"loop": loop_label(name), "jax_name": name, **counts, "total": sum(counts.values())}
      )
  return sorted(found, key=lambda r: r["loop"])


def train_step_hlo(size: common.Size) -> str:
  from jaxseq.training import parallel

  _, state, train_step, mesh = train_throughput.build(size)
  batch = parallel.shard_batch(common.make_batches(size, 1)[0], mesh)
  return train_step.lower(state, batch).compile().as_text()


def beam_search_hlo(size: common.Size, beam_size: int) -> str:
  import jax.numpy as jnp

  from jaxseq.decoding import evaluation

  model, state, _, _ = train_throughput.build(size)
  src = jnp.asarray(common.make_batches(size, 1)[0]["src"])
  lowered = evaluation._beam.lower(
    state.params, src, None, 0.6, 2.0, 4, model=model, beam_size=beam_size, max_len=size.length
  )
  return lowered.compile().as_text()


def measure(size_names: list[str], beam_size: int) -> dict:
  record = {
    "benchmark": "loop_ops",
    "hardware": common.hardware(),
    "versions": common.versions(),
    "beam_size": beam_size,
    "sizes": {},
  }
  for name in size_names:
    size = common.SIZES[name]
    train = loops(train_step_hlo(size))
    beam = loops(beam_search_hlo(size, beam_size))
    record["sizes"][name] = {
      "size": dataclasses.asdict(size),
      "train_step": train,
      "beam_search": beam,
      "train_step_per_time_step": {
        k: sum(r[k] for r in train) for k in ("dots", "fusions", "other", "total")
      },
      "train_backward_per_time_step": sum(
        r["total"] for r in train if r["loop"].startswith("backward")
      ),
    }
  return record


def table(record: dict) -> str:
  rows = []
  for name, result in record["sizes"].items():
    for where in ("train_step", "beam_search"):
      for r in result[where]:
        rows.append({"size": name, "program": where.replace("_", " "), **r})
  return common.markdown_table(
    rows,
    [
      ("size", "size", ""),
      ("program", "program", ""),
      ("loop", "loop", ""),
      ("dots", "dots", "d"),
      ("fusions", "fusions", "d"),
      ("other", "other", "d"),
      ("total", "ops per time step", "d"),
    ],
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--sizes", default="small,large", help="comma-separated: " + ", ".join(common.SIZES)
  )
  parser.add_argument("--beam_size", type=int, default=4)
  parser.add_argument("--out", default="", help="JSON file to write (default: print only)")
  args = parser.parse_args(argv)
  record = measure([s for s in args.sizes.split(",") if s], args.beam_size)
  print(table(record))
  if args.out:
    common.write_json(args.out, record)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
