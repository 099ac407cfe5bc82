"""Data parallelism through jax.sharding: one mesh axis, the batch split along it.

Parameters and optimizer state are replicated; each batch is sharded on its leading
axis over every device. `jax.jit` partitions the step (GSPMD), except the gradient:
`sum_over_shards` computes it with `jax.shard_map` on each device's own rows and adds
the devices' sums in one all-reduce. (Left to GSPMD, the weight gradients of the
backward scans are all-reduced inside the loops, once per time step.) The same code
runs on one CPU, on N simulated CPU devices (JAX_NUM_CPU_DEVICES=N), and on GPUs or TPUs.

Several hosts: `initialize_distributed` starts `jax.distributed` when
config.distributed is True or the environment sets JAXSEQ_DISTRIBUTED=1; the mesh then
spans the devices of every process, and each process feeds only its own rows of the
global batch (input_pipeline.TrainIterator picks them), which `shard_batch` places.
"""

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxseq.errors import ConfigError

DATA_AXIS = "data"
DISTRIBUTED_ENV = "JAXSEQ_DISTRIBUTED"


def distributed_requested(config) -> bool:
  """Whether this run spans several processes (config.distributed or JAXSEQ_DISTRIBUTED=1)."""
  from_config = bool(config.distributed)
  return from_config or os.environ.get(DISTRIBUTED_ENV, "0") not in ("", "0", "false", "False")


def initialize_distributed(config) -> bool:
  """Calls `jax.distributed.initialize()` once if requested; returns whether it did.

  Must run before anything touches a device. The coordinator address, process count
  and process id come from the cluster (SLURM, Open MPI, Cloud TPU...) or, where none
  is detected, from JAX_COORDINATOR_ADDRESS (host:port), JAX_NUM_PROCESSES and
  JAX_PROCESS_ID.
  """
  if not distributed_requested(config) or jax.distributed.is_initialized():
    return False
  count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
  try:
    jax.distributed.initialize(
      num_processes=int(count) if count else None, process_id=int(index) if index else None
    )
  except ValueError as e:  # no cluster found, or unusable ids: say what is needed
    raise ConfigError(
      "distributed",
      True,
      "a cluster that jax.distributed detects (SLURM, Open MPI, Cloud TPU) or "
      f"JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID set ({e})",
    ) from e
  return True


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process."""
  # Auto axes: the compiler propagates shardings through the step (GSPMD).
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def sum_over_shards(fn: Callable[[Any, Any], Any], mesh: Mesh | None) -> Callable[[Any, Any], Any]:
  """fn(replicated, rows) -> sums over `rows`, run on each device's rows and added up once.

  `rows` is a pytree of arrays whose leading axis is the batch (sharded over the data
  axis), `replicated` one that every device holds whole (parameters). Each device
  differentiates and sums on its own rows, with no communication, and a single psum
  adds the results. With mesh None, fn itself.
  """
  if mesh is None:
    return fn

  def per_device(replicated_args, rows):
    return jax.lax.psum(fn(replicated_args, rows), DATA_AXIS)

  # check_vma=False: gradients taken inside are each device's own, summed by the psum.
  return jax.shard_map(
    per_device, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(), check_vma=False
  )


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def init_replicated(init_fn: Callable[[], Any], mesh: Mesh) -> Any:
  """Runs `init_fn()` under jit and leaves its result replicated on every device.

  Creating the state inside jit (rather than `device_put` afterwards) also works when
  the mesh spans several processes, whose devices a plain `device_put` cannot reach;
  every process computes the same values from the same seed.
  """
  return jax.jit(init_fn, out_shardings=replicated(mesh))()


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Places a host batch on the devices, split along its leading axis.

  With several processes each passes its own part of the global batch
  (input_pipeline.TrainIterator yields it); the global array is assembled without
  moving data between hosts.
  """
  sharding = batch_sharding(mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)
