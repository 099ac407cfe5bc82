"""XLA:CPU's float32 matmul rate under its alternative dot backends.

    python -m benchmarks.speed.matmul_flags --out benchmarks/results/speed/matmul_flags.json

Each setting of XLA_FLAGS runs in a fresh process (the flags are read once, when the
backend starts) and times `jnp.dot` on a square 2048 x 2048 product and on the two
shapes that dominate the large benchmark size: the recurrent product of one scan step
(batch 128 x 512 x 3 gates of 512) and the output projection of a whole batch (2048
positions x 512 x vocabulary 1000). The best of three timed rounds is kept.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import common

SHAPES = ((2048, 2048, 2048), (128, 512, 1536), (2048, 512, 1000))  # (m, k, n)
SETTINGS = ("", "--xla_cpu_use_onednn=true", "--xla_cpu_experimental_onednn_custom_call=true")


def measure() -> dict:
  """GFLOP/s of jnp.dot per shape, in this process (with its XLA_FLAGS)."""
  import jax
  import jax.numpy as jnp

  rates = {}
  dot = jax.jit(jnp.dot)
  for m, k, n in SHAPES:
    a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, n), jnp.float32)
    dot(a, b).block_until_ready()
    repeats = max(3, int(2e10 / (2 * m * k * n)))  # about 0.1-0.2 s a round
    best = float("inf")
    for _ in range(3):
      start = time.perf_counter()
      for _ in range(repeats):
        dot(a, b).block_until_ready()
      best = min(best, (time.perf_counter() - start) / repeats)
    rates[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
  return rates


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write the JSON record here")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(measure()))
    return
  results = []
  for flags in SETTINGS:
    env = {**os.environ, "XLA_FLAGS": flags}
    done = subprocess.run(
      [sys.executable, "-m", "benchmarks.speed.matmul_flags", "--worker"],
      env=env,
      capture_output=True,
      text=True,
      check=True,
    )
    rates = json.loads(done.stdout.strip().splitlines()[-1])
    results.append({"xla_flags": flags, "gflops": rates})
    print(f"{flags or '(default)':50s} " + "  ".join(f"{s} {r:6.0f}" for s, r in rates.items()))
  if args.out:
    common.write_json(
      args.out,
      {
        "benchmark": "matmul_flags",
        "hardware": common.hardware(),
        "versions": common.versions(),
        "results": results,
      },
    )


if __name__ == "__main__":
  main()
