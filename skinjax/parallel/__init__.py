"""Devices and processes: the mesh the batch is sharded over, jax.distributed."""
