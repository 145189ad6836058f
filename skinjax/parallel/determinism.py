"""Deterministic GPU kernels, asked of XLA before its backend starts.

On CPU the same config and seed already give the same parameters bit for
bit. On GPU, scatter-adds and some cuDNN/cuBLAS algorithms accumulate in
whatever order threads finish, so two runs drift apart in the last bits and
then further. XLA's `--xla_gpu_deterministic_ops` picks only deterministic
kernels (and skips autotuning choices that are not): slower, by an amount
that depends on the model, typically a few to tens of percent on
convolutional nets, and not yet measured for skinjax on a GPU.
"""

import os

FLAG = '--xla_gpu_deterministic_ops=true'


def request(enabled: bool) -> None:
  """Adds FLAG to XLA_FLAGS when `enabled`. XLA reads them once, when the
  backend starts: call it before anything touches a JAX device."""
  current = os.environ.get('XLA_FLAGS', '')
  if enabled and FLAG not in current.split():
    os.environ['XLA_FLAGS'] = f'{current} {FLAG}'.strip()
