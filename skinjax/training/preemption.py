"""Preemption: SIGTERM or SIGINT ends training cleanly at a step boundary.

The training loop asks `stop_requested(step)` after every step; when it says
yes, the loop saves a checkpoint and returns, so the process exits 0 and the
same command resumes exactly.

A second SIGINT (Ctrl-C pressed again) ends the process at once, without a
checkpoint: the last complete one stays, and Orbax never lists a half-written
one. Data workers never act on either signal, though a terminal or SLURM
sends them to the whole process group (skinjax.data.pipeline): they start
with both blocked, ignore them, and end with the training process.

With several processes, every one must stop at the same step or the next
collective would hang. JAX's preemption service (part of jax.distributed)
catches SIGTERM on any process and agrees on that step; SIGINT (Ctrl-C) is
turned into a SIGTERM to join it.
"""

import contextlib
import os
import signal
import threading

import jax
from jax.experimental import multihost_utils


@contextlib.contextmanager
def handlers():
  """Catches SIGTERM and SIGINT inside the block, which receives
  `stop_requested(step)`; on leaving it, the handlers and signal mask of
  before are back (a notebook's Ctrl-C, or a subprocess started later,
  behaves as if training never ran)."""
  received = []

  def note(signum):
    if not received:  # launch.sh passes a Ctrl-C on as SIGTERM too
      print(f'\nReceived {signal.Signals(signum).name}: finishing this step, '
            'then saving a checkpoint and exiting.', flush=True)
    received.append(signum)

  def on_sigint(signum, _):
    if signal.SIGINT in received:
      print('\nReceived SIGINT again: exiting now, without a checkpoint.',
            flush=True)
      signal.signal(signal.SIGINT, signal.SIG_DFL)
      os.kill(os.getpid(), signal.SIGINT)
      return
    note(signum)
    if jax.process_count() > 1:
      os.kill(os.getpid(), signal.SIGTERM)  # to the preemption service

  several = jax.process_count() > 1
  before = {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint)}
  if not several:
    before[signal.SIGTERM] = signal.signal(
        signal.SIGTERM, lambda signum, _: note(signum))
  with _blocked_in_new_processes():
    try:
      yield (multihost_utils.reached_preemption_sync_point if several
             else lambda step: bool(received))
    finally:
      for signum, handler in before.items():
        signal.signal(signum, handler)


@contextlib.contextmanager
def _blocked_in_new_processes():
  """Blocks SIGINT and SIGTERM in this thread, the one that starts the data
  workers: a worker inherits the block, so a signal sent to the process
  group while it starts up (seconds, before it can ignore them) waits
  instead of killing it. This process still receives them, in a thread
  kept for that, and handles them as before: Python runs signal handlers in
  the main thread whichever thread the signal arrived in."""
  done = threading.Event()
  threading.Thread(target=done.wait, name='skinjax-signals',
                   daemon=True).start()
  mask = signal.pthread_sigmask(signal.SIG_BLOCK,
                                {signal.SIGINT, signal.SIGTERM})
  try:
    yield
  finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    done.set()
