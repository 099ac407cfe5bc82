"""Checkpoint averaging: the element-wise mean of the parameters of the last checkpoints.

Averaging the parameters saved at the end of training smooths out the noise of the last
updates and usually scores a little better than the final parameters alone.

References:
  Vaswani et al. 2017, "Attention Is All You Need", Sec. 6.1 (averaging the last 5 or 20
    checkpoints); Junczys-Dowmunt et al. 2016 (checkpoint ensembles / averaging for NMT).
"""

import jax
import jax.numpy as jnp

from jaxseq.training import checkpointing


def average_trees(trees: list):
  """The leaf-wise mean of pytrees of equal structure (summed in float32, cast back)."""
  if not trees:
    raise ValueError("average_trees needs at least one tree")

  def mean(*leaves):
    total = sum(jnp.asarray(x, jnp.float32) for x in leaves)
    return (total / len(leaves)).astype(jnp.asarray(leaves[0]).dtype)

  return jax.tree.map(mean, *trees)


def last_steps(manager, count: int) -> list[int]:
  """The newest `count` checkpoint steps (fewer when fewer exist), oldest first."""
  return sorted(manager.all_steps())[-count:]


def average_last(manager, count: int, abstract_state) -> tuple[list[int], object]:
  """(steps, mean params) of the newest `count` checkpoints, each restored and verified."""
  steps = last_steps(manager, count)
  params = [checkpointing.restore_state(manager, step, abstract_state).params for step in steps]
  return steps, average_trees(params)
