"""XLA:CPU's float32 matmul rate under its alternative dot backends.

    python -m benchmarks.speed.matmul_flags --out benchmarks/results/speed/matmul_flags.json

Each setting of XLA_FLAGS runs in a fresh process (the flags are read once, when the
backend starts) and times `jnp.dot` on a square 2048 x 2048 product and on the two
shapes that dominate the large benchmark size: the recurrent product of one scan step
(batch 128 x 512 x 3 gates of 512) and the output projection of a whole batch (2048
positions x 512 x vocabulary 1000). The best of three timed rounds is kept.

The default backend also times, on the output projection's shape, the three products that
training runs for one `x @ W` (forward `x @ W`, backward `g @ W^T` and `x^T @ g`), once
with float32 operands and once with bfloat16 operands and float32 results: whether
rounding the operands (mixed precision) would speed up the forward and backward passes.
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


def _best_seconds(fn, *args, repeats: int = 10) -> float:
  """Seconds of one call of fn(*args): the best of three rounds of `repeats` calls, after
  one call that compiles."""
  import jax

  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(repeats):
      jax.block_until_ready(fn(*args))
    best = min(best, (time.perf_counter() - start) / repeats)
  return best


def measure() -> dict:
  """GFLOP/s of jnp.dot per shape, in this process (with its XLA_FLAGS)."""
  import jax
  import jax.numpy as jnp

  rates = {}
  dot = jax.jit(jnp.dot)
  for m, k, n in SHAPES:
    a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, n), jnp.float32)
    repeats = max(3, int(2e10 / (2 * m * k * n)))  # about 0.1-0.2 s a round
    rates[f"{m}x{k}x{n}"] = 2 * m * k * n / _best_seconds(dot, a, b, repeats=repeats) / 1e9
  return rates


def step_products(x, w, g, dtype: str) -> dict:
  """The three products that training runs for one `x @ W` (x [m, k], W [k, n], the
  output's gradient g [m, n]), with operands rounded to dtype and float32 results."""
  import jax.numpy as jnp

  x, w, g = (a.astype(dtype) for a in (x, w, g))
  f32 = jnp.float32
  return {
    "forward x @ W": jnp.dot(x, w, preferred_element_type=f32),
    "backward g @ W^T": jnp.dot(g, w.T, preferred_element_type=f32),
    "backward x^T @ g": jnp.dot(x.T, g, preferred_element_type=f32),
  }


def measure_layouts() -> dict:
  """GFLOP/s of `step_products`, each timed alone, with float32 and bfloat16 operands, on
  the output projection's shape."""
  import jax

  m, k, n = SHAPES[-1]
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  args = (
    jax.random.normal(keys[0], (m, k)),
    jax.random.normal(keys[1], (k, n)),
    jax.random.normal(keys[2], (m, n)),
  )
  out: dict = {}
  for name in step_products(*args, "float32"):
    out[name] = {}
    for dtype in ("float32", "bfloat16"):
      fn = jax.jit(lambda x, w, g, name=name, dtype=dtype: step_products(x, w, g, dtype)[name])
      out[name][dtype] = 2 * m * k * n / _best_seconds(fn, *args) / 1e9
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="write the JSON record here")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--layouts_worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(measure()))
    return
  if args.layouts_worker:
    print(json.dumps(measure_layouts()))
    return
  results = []
  for flags in SETTINGS:
    rates = _run_worker("--worker", flags)
    results.append({"xla_flags": flags, "gflops": rates})
    print(f"{flags or '(default)':50s} " + "  ".join(f"{s} {r:6.0f}" for s, r in rates.items()))
  layouts = _run_worker("--layouts_worker", "")
  for name, rates in layouts.items():
    print(f"{name:20s} " + "  ".join(f"{dt} {r:6.0f}" for dt, r in rates.items()))
  if args.out:
    common.write_json(
      args.out,
      {
        "benchmark": "matmul_flags",
        "hardware": common.hardware(),
        "versions": common.versions(),
        "results": results,
        "operand_dtypes": {"shape": "x".join(map(str, SHAPES[-1])), "gflops": layouts},
      },
    )


def _run_worker(flag: str, xla_flags: str) -> dict:
  """One measurement in a fresh process with these XLA_FLAGS; its JSON answer."""
  done = subprocess.run(
    [sys.executable, "-m", "benchmarks.speed.matmul_flags", flag],
    env={**os.environ, "XLA_FLAGS": xla_flags},
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
  main()
