"""Data parallelism through jax.sharding: one mesh axis, the batch split along it.

Parameters and optimizer state are replicated; each batch is sharded on its leading
axis over every device. `jax.jit` then partitions the step by itself (GSPMD), with the
gradient all-reduce inserted by the compiler. The same code runs on one CPU, on N
simulated CPU devices (JAX_NUM_CPU_DEVICES=N), and on GPUs or TPUs.
"""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process."""
  # Auto axes: the compiler propagates shardings through the step (GSPMD).
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Places a host batch on the devices, split along its leading axis.

  With several processes each passes its own part of the global batch.
  """
  sharding = batch_sharding(mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)
