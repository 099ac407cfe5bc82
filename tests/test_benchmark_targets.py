"""benchmarks/speed/run.py: targets against measurements, and what a speedup target asks."""

import pytest

from benchmarks.speed import run


def _comparison(name, speedup, torch_gflops, jaxseq_gflops, fraction_best):
  return {
    "size": {"name": name, "batch_size": 32},
    "speedup": speedup,
    "torch_gflops": torch_gflops,
    "jaxseq_gflops": jaxseq_gflops,
    "matmul_fraction_best": fraction_best,
  }


def test_a_speedup_target_says_what_rate_it_needs_of_the_step():
  small = _comparison("small", 1.5, torch_gflops=20.0, jaxseq_gflops=30.0, fraction_best=0.1)
  large = _comparison("large", 0.9, torch_gflops=110.0, jaxseq_gflops=99.0, fraction_best=0.4)
  checks = {(c["size"], c["measure"]): c for c in run.verdicts([small, large], 200e9)}
  assert not checks["small", "speedup"]["met"]
  # 3x PyTorch's 20 GFLOP/s is 60 GFLOP/s: 0.3 of a 200 GFLOP/s matmul; 30 reached is 0.15.
  assert checks["small", "speedup"]["needs_of_jnp_dot"] == pytest.approx(0.3)
  assert checks["small", "speedup"]["reaches_of_jnp_dot"] == pytest.approx(0.15)
  # 1.5x 110 GFLOP/s = 165: 0.825 of the matmul rate.
  assert checks["large", "speedup"]["needs_of_jnp_dot"] == pytest.approx(0.825)
  assert "needs_of_jnp_dot" not in checks["large", "matmul_fraction"]
  assert not checks["large", "matmul_fraction"]["met"]
  assert "0.82 of the jnp.dot rate, it runs at 0.49" in run.describe(checks["large", "speedup"])


def test_a_met_target_is_reported_met():
  small = _comparison("small", 3.2, torch_gflops=20.0, jaxseq_gflops=64.0, fraction_best=0.3)
  (check,) = run.verdicts([small], 200e9)
  assert check["met"] and "met;" in run.describe(check) and "not met" not in run.describe(check)
