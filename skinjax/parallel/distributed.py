"""Joins JAX's multi-controller runtime when a run spans several processes.

Every process runs the same program on its own devices; jax.devices() then
lists the devices of all processes, so the mesh, the jitted steps and Orbax
span them all. Processes are found from explicit flags (`launch.sh
multiprocess`, or any launcher), from SLURM (`srun`, one process per node or
per GPU) or on Cloud TPU; a lone process initialises nothing.

On CPU, cross-process collectives use gloo (JAX's default,
jax_cpu_collectives_implementation).
"""

import importlib.util
import os

import jax


def initialize(coordinator_address: str = '', num_processes: int = 1,
               process_id: int = 0) -> None:
  """Must run before anything touches a JAX device."""
  if num_processes > 1:
    jax.distributed.initialize(coordinator_address or None, num_processes,
                               process_id)
  elif _slurm_tasks() > 1:
    jax.distributed.initialize(local_device_ids=_slurm_local_devices())
  elif _on_cloud_tpu():
    jax.distributed.initialize()  # the TPU VM's metadata says the rest


def _on_cloud_tpu() -> bool:
  """libtpu is installed and `import jax` found TPU chips (without them it
  sets TPU_SKIP_MDS_QUERY, as it skips the metadata server)."""
  return (importlib.util.find_spec('libtpu') is not None
          and 'TPU_SKIP_MDS_QUERY' not in os.environ)


def _slurm_tasks() -> int:
  """Tasks of this `srun` step (a batch script itself runs as one)."""
  return int(os.environ.get('SLURM_STEP_NUM_TASKS', 1))


def _slurm_local_devices():
  """All of a node's GPUs when it runs one task, else JAX's default (the GPU
  numbered by the task's SLURM_LOCALID)."""
  tasks_here = os.environ.get('SLURM_STEP_TASKS_PER_NODE', '').split('(')[0]
  gpus = os.environ.get('SLURM_GPUS_ON_NODE')
  if tasks_here == '1' and gpus:
    return list(range(int(gpus)))
  return None
