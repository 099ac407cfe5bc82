"""Why the GRU's input projection is split by gate before the scan (jaxseq/model/cells.py).

    python -m benchmarks.speed.gru_gates

Times a `lax.scan` of GRU steps over a precomputed input projection in two layouts:
"fused", one [len, batch, 3 * hidden] array that each step slices into its three gates,
and "split", one [len, batch, hidden] array per gate (what `cells.split_gates` makes).
Both compute the same numbers (checked here). On XLA's CPU backend the fused layout
makes the step's gate arithmetic a loop that reads several slices of the scanned array,
and that loop is compiled to scalar code. Also times the benchmark train step of the
"small" size (benchmarks/speed/train_throughput.py) with the library as it is. Writes
benchmarks/results/speed/gates.json with the hardware.
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks.speed import train_throughput
from jaxseq.model import cells


def _fused_step(kernel, bias, h, x_proj):
  """The old layout: the step splits its [batch, 3 * hidden] input itself."""
  return cells.gru_step(kernel, bias, h, cells.split_gates(x_proj, 3))


def time_scan(batch: int, hidden: int, length: int, repeats: int = 200) -> dict:
  keys = jax.random.split(jax.random.key(0), 3)
  kernel = 0.1 * jax.random.normal(keys[0], (hidden, 3 * hidden))
  bias = jnp.zeros(3 * hidden)
  h0 = jax.random.normal(keys[1], (batch, hidden))
  xs = jax.random.normal(keys[2], (length, batch, 3 * hidden))

  fused = jax.jit(
    lambda h, xs: jax.lax.scan(lambda c, x: (_fused_step(kernel, bias, c, x), None), h, xs)[0]
  )
  split = jax.jit(
    lambda h, xs: jax.lax.scan(lambda c, x: (cells.gru_step(kernel, bias, c, x), None), h, xs)[0]
  )
  xs_split = cells.split_gates(xs, 3)
  np.testing.assert_allclose(fused(h0, xs), split(h0, xs_split), rtol=1e-5, atol=1e-5)

  def per_step_us(fn, arg):
    jax.block_until_ready(fn(h0, arg))
    start = time.perf_counter()
    for _ in range(repeats):
      out = fn(h0, arg)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats / length * 1e6

  fused_us, split_us = per_step_us(fused, xs), per_step_us(split, xs_split)
  return {
    "batch": batch,
    "hidden": hidden,
    "length": length,
    "fused_us_per_step": fused_us,
    "split_us_per_step": split_us,
    "speedup": fused_us / split_us,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(common.RESULTS, "speed", "gates.json"))
  args = parser.parse_args(argv)
  scans = [time_scan(b, h, 16) for b, h in ((1, 128), (32, 128), (128, 256), (128, 512))]
  step = train_throughput.measure(common.SIZES["small"], num_steps=20)
  record = {
    "benchmark": "gru_gates",
    "hardware": common.hardware(),
    "versions": common.versions(),
    "scan": scans,
    "train_step_small_ms": step["step_seconds_median"] * 1e3,
  }
  common.write_json(args.out, record)
  for row in scans:
    print(
      f"batch {row['batch']:4d} hidden {row['hidden']:4d}: fused "
      f"{row['fused_us_per_step']:7.1f} us/step, split {row['split_us_per_step']:7.1f} "
      f"us/step ({row['speedup']:.2f}x)"
    )
  print(f"train step (small): {record['train_step_small_ms']:.1f} ms")


if __name__ == "__main__":
  main()
