"""One thread owns the device: it gathers the photos that concurrent requests
are waiting on into batches, pads each to one of a few fixed shapes (so jit
compiles a bounded number of programs) and hands every request its rows.

Work comes in jobs of one kind ('predict', 'grad_cam', ...), each a few
photos; a batch holds jobs of one kind only, at most `max_batch_size`
photos, gathered for at most `max_wait_s` after its first job arrived. A
job whose future was cancelled (its client went away, its deadline passed)
is dropped before it reaches the device.

A batch that fails fails its jobs, and the thread goes on. Should the
thread itself end (anything escaping it), every waiting and later job fails
at once with DeviceFailed, `health` says so, and `on_failure` is called.
"""

import collections
import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time

import numpy as np

_STOP = object()  # queued by Batcher.stop


class DeviceFailed(RuntimeError):
  """The device thread has ended: no job will run in this process."""


def batch_shapes(max_batch_size: int, device_count: int) -> tuple:
  """The batch sizes that are compiled: powers of two times the device
  count, up to the first that holds `max_batch_size` photos."""
  shapes = [device_count]
  while shapes[-1] < max_batch_size:
    shapes.append(shapes[-1] * 2)
  return tuple(shapes)


def padded_shape(count: int, shapes) -> int:
  """The smallest of `shapes` that holds `count` photos."""
  return next(s for s in shapes if s >= count)


def pad(arrays, size: int):
  """Each array (photos along axis 0) padded to `size` rows with copies of
  its first row, which the caller drops from the outputs."""
  return [np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)])
          for a in arrays]


@dataclasses.dataclass
class _Job:
  kind: str
  inputs: tuple  # arrays with one row per photo
  future: concurrent.futures.Future

  @property
  def size(self) -> int:
    return len(self.inputs[0])


class Batcher:
  """A worker thread that runs `functions[kind](*padded inputs)` on batches
  of jobs and splits the outputs (an array, or a dict of arrays, one row
  per photo) back into the jobs' futures."""

  def __init__(self, functions: dict, max_batch_size: int,
               max_wait_s: float, device_count: int, on_failure=None):
    self._functions = functions
    self.max_batch_size = max_batch_size
    self.shapes = batch_shapes(max_batch_size, device_count)
    self._max_wait_s = max_wait_s
    self._queue = queue.Queue()
    self._held = None  # a job that did not fit the last batch
    self._lock = threading.Lock()
    self._photos_per_batch = collections.Counter()
    self._padded_shapes = collections.Counter()
    self._dropped_photos = 0  # of jobs cancelled before they ran
    self._running_since = None  # monotonic start of the batch on the device
    self.failure = None  # why the thread ended, once it has
    self._on_failure = on_failure
    self._thread = threading.Thread(target=self._run_guarded,
                                    name='device-batcher', daemon=True)

  def start(self) -> 'Batcher':
    self._thread.start()
    return self

  def stop(self) -> None:
    """Ends the worker once the jobs already queued are done."""
    self._queue.put(_STOP)
    self._thread.join()

  def submit(self, kind: str, *inputs) -> list:
    """Futures of the outputs for these photos (arrays, or dicts of arrays,
    of one row per photo), one per chunk of at most max_batch_size photos."""
    if kind not in self._functions:
      raise KeyError(f'no function for jobs of kind {kind!r}')
    futures = []
    with self._lock:  # against the thread failing between check and put
      if self.failure is not None:
        raise DeviceFailed(self.failure)
      for start in range(0, len(inputs[0]), self.max_batch_size):
        future = concurrent.futures.Future()
        self._queue.put(_Job(kind, tuple(
            np.asarray(x[start:start + self.max_batch_size])
            for x in inputs), future))
        futures.append(future)
    return futures

  def health(self, stall_s: float) -> str | None:
    """None while the thread lives and no batch has run longer than
    `stall_s` seconds; else what is wrong."""
    if self.failure is not None:
      return f'the device thread has ended: {self.failure}'
    if not self._thread.is_alive():
      return 'the device thread is not running'
    since = self._running_since
    if since is not None and time.monotonic() - since > stall_s:
      return (f'a batch has run for {time.monotonic() - since:.0f} s '
              f'(serve.device_stall_s = {stall_s:g})')
    return None

  def statistics(self) -> dict:
    """Batches run so far: how many of each number of photos, and of each
    padded shape."""
    with self._lock:
      return {'batches': sum(self._photos_per_batch.values()),
              'photos': sum(n * c for n, c in self._photos_per_batch.items()),
              'photos_per_batch': dict(sorted(self._photos_per_batch.items())),
              'padded_shapes': dict(sorted(self._padded_shapes.items())),
              'photos_dropped': self._dropped_photos}

  def _run_guarded(self) -> None:
    """_run; should anything end it, fails all work now and to come."""
    try:
      self._run()
    except BaseException as e:  # pylint: disable=broad-except
      with self._lock:
        self.failure = f'{type(e).__name__}: {e}'.rstrip(': ')
      failed = DeviceFailed(self.failure)
      if self._held is not None:
        self._held.future.set_exception(failed)
      while True:
        try:
          job = self._queue.get_nowait()
        except queue.Empty:
          break
        if job is not _STOP and job.future.set_running_or_notify_cancel():
          job.future.set_exception(failed)
      logging.getLogger(__name__).error('The device thread has ended',
                                        exc_info=True)
      if self._on_failure is not None:
        self._on_failure(self.failure)
    finally:
      self._running_since = None

  def _run(self) -> None:
    while True:
      jobs = self._gather()
      if jobs is _STOP:
        return
      self._run_batch(jobs)

  def _next_job(self, deadline=None):
    """The held job, else the next queued one whose request still waits
    (one whose client went away is dropped); queue.Empty at `deadline`."""
    if self._held is not None:
      job, self._held = self._held, None
      return job
    while True:
      timeout = None if deadline is None else max(
          0.0, deadline - time.monotonic())
      job = self._queue.get(timeout=timeout)
      if job is _STOP or job.future.set_running_or_notify_cancel():
        return job
      with self._lock:
        self._dropped_photos += job.size

  def _gather(self):
    """The next batch's jobs (_STOP at stop): the first waiting job, then
    others of its kind arriving within max_wait_s, while they fit."""
    first = self._next_job()
    if first is _STOP:
      return _STOP
    jobs, count = [first], first.size
    deadline = time.monotonic() + self._max_wait_s
    while count < self.max_batch_size:
      try:
        job = self._next_job(deadline)
      except queue.Empty:
        break
      if job is _STOP or job.kind != first.kind or (
          count + job.size > self.max_batch_size):
        self._held = job  # starts the next batch (or stops the worker)
        break
      jobs.append(job)
      count += job.size
    return jobs

  def _run_batch(self, jobs) -> None:
    count = sum(job.size for job in jobs)
    size = padded_shape(count, self.shapes)
    self._running_since = time.monotonic()
    try:
      inputs = pad([np.concatenate(parts) for parts in
                    zip(*(job.inputs for job in jobs))], size)
      outputs = self._functions[jobs[0].kind](*inputs)
    except Exception as e:  # pylint: disable=broad-except
      for job in jobs:  # the requests fail with it; the worker goes on
        job.future.set_exception(e)
      return
    except BaseException as e:
      for job in jobs:
        job.future.set_exception(DeviceFailed(f'{type(e).__name__}: {e}'))
      raise
    finally:
      self._running_since = None
    with self._lock:
      self._photos_per_batch[count] += 1
      self._padded_shapes[size] += 1
    start = 0
    for job in jobs:
      job.future.set_result(_rows(outputs, start, start + job.size))
      start += job.size



def _rows(outputs, start: int, stop: int):
  """Rows [start, stop) of an array or of each array of a dict."""
  if isinstance(outputs, dict):
    return {key: np.asarray(value)[start:stop]
            for key, value in outputs.items()}
  return np.asarray(outputs)[start:stop]
