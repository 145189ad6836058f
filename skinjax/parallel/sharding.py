"""Where the batch is sharded: one `data` mesh axis over every device.

Parameters and optimiser state are replicated; each batch is split along its
first axis. Under `jax.jit` this makes the step data-parallel with gradients
and BatchNorm statistics reduced over the global batch.
"""

import collections
from typing import Iterator

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def create_mesh() -> Mesh:
  """Every device on the `data` axis, in the order jax.make_mesh chooses
  from the topology (on TPU slices it keeps neighbours adjacent). Sharding
  stays automatic: XLA propagates it from the inputs and outputs."""
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec('data'))


def shard_batch(local_batch, mesh: Mesh):
  """Assembles global arrays from this process's slice of the global batch."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x),
      local_batch)


def device_batches(local_batches: Iterator, mesh: Mesh,
                   ahead: int) -> Iterator:
  """shard_batch of each batch, `ahead` batches early: their copies to the
  devices are under way while the current step runs (0: none early)."""
  queue = collections.deque()
  for local_batch in local_batches:
    queue.append(shard_batch(local_batch, mesh))
    if len(queue) > ahead:
      yield queue.popleft()
  yield from queue
