"""Preemption: SIGTERM or SIGINT ends training cleanly at a step boundary.

The training loop asks `stop_requested(step)` after every step; when it says
yes, the loop saves a checkpoint (with the data iterator's position) and
returns, so the process exits 0 and the same command resumes exactly.

With several processes, every one must stop at the same step or the next
collective would hang. JAX's preemption service (part of jax.distributed)
catches SIGTERM on any process and agrees on that step; SIGINT (Ctrl-C) is
turned into a SIGTERM to join it.
"""

import os
import signal

import jax
from jax.experimental import multihost_utils


def install_handlers():
  """Catches SIGTERM and SIGINT from now on; returns `stop_requested(step)`."""
  if jax.process_count() > 1:
    signal.signal(signal.SIGINT,
                  lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    return multihost_utils.reached_preemption_sync_point
  received = []

  def handler(signum, _):
    if not received:  # launch.sh passes a Ctrl-C on: it may come twice
      print(f'\nReceived {signal.Signals(signum).name}: finishing this step, '
            'then saving a checkpoint and exiting.', flush=True)
    received.append(signum)

  signal.signal(signal.SIGTERM, handler)
  signal.signal(signal.SIGINT, handler)
  return lambda step: bool(received)
