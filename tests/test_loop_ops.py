"""benchmarks/speed/loop_ops.py counts the work inside compiled while loops."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.speed import loop_ops


def _compiled_text(fn, *args) -> str:
  return jax.jit(fn).lower(*args).compile().as_text()


def test_a_matmul_in_a_scan_body_is_counted_as_a_dot_per_step():
  def rnn(w, xs):
    step = lambda h, x: (jnp.tanh(h @ w + x), h.sum())
    return lax.scan(step, jnp.zeros(8), xs)

  found = loop_ops.loops(_compiled_text(rnn, jnp.ones((8, 8)), jnp.ones((5, 8))))
  assert len(found) == 1
  assert found[0]["dots"] >= 1 and found[0]["loop"] == "forward decoder"
  assert found[0]["total"] == found[0]["dots"] + found[0]["fusions"] + found[0]["other"]


def test_elementwise_bodies_have_no_dot_and_backward_loops_are_named():
  def cumulative(xs):
    return lax.scan(lambda c, x: (jnp.sin(c) * x, c), jnp.ones(4), xs)[0].sum()

  text = _compiled_text(jax.grad(cumulative), jnp.ones((6, 4)))
  found = loop_ops.loops(text)
  assert {r["loop"] for r in found} == {"forward decoder", "backward decoder"}
  assert all(r["dots"] == 0 and r["fusions"] + r["other"] >= 1 for r in found)
