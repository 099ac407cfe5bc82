"""The products that benchmarks/speed/matmul_flags.py times are the ones a step runs."""

import numpy as np

from benchmarks.speed import matmul_flags


def test_step_products_are_the_forward_and_both_gradient_products():
  rng = np.random.default_rng(0)
  x, w, g = (rng.standard_normal(s).astype(np.float32) for s in ((6, 4), (4, 5), (6, 5)))
  want = {"forward x @ W": x @ w, "backward g @ W^T": g @ w.T, "backward x^T @ g": x.T @ g}
  for dtype, tolerance in (("float32", 1e-5), ("bfloat16", 5e-2)):
    got = matmul_flags.step_products(x, w, g, dtype)
    assert set(got) == set(want)
    for name, product in got.items():
      assert product.dtype == np.float32, (dtype, name)
      np.testing.assert_allclose(np.asarray(product), want[name], rtol=tolerance, atol=tolerance)
  rounded = matmul_flags.step_products(x, w, g, "bfloat16")["forward x @ W"]
  assert not np.array_equal(np.asarray(rounded), x @ w)  # the operands really were rounded
