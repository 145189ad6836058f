"""`serve` as a function of values: a run's calibrated checkpoint restored
from its run folder alone, compiled for every batch shape, and answering
HTTP(S) requests on a listening socket until SIGINT or SIGTERM (exit status
0), or until its device thread has died (status 70, EX_SOFTWARE, after
serve.device_failure_exit_s of 503s: a supervisor restarts it). Writes
nothing to disk."""

import ctypes
import gc
import ipaddress
import signal
import sys
import threading

import jax
import uvicorn

from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.service import app as service_app
from skinjax.service import batching
from skinjax.service import connections
from skinjax.service import device
from skinjax.service import scoring

DEVICE_FAILURE_STATUS = 70  # EX_SOFTWARE: an internal error; restart me


def allowed_hosts(config, host: str) -> list:
  """The Host header names answered: serve.allowed_hosts, and `host` when
  it is one address or name (not a wildcard such as 0.0.0.0)."""
  names = [n.strip() for n in config.serve.allowed_hosts.split(',')
           if n.strip()]
  try:
    address = ipaddress.ip_address(host)
  except ValueError:
    return names + [host]
  if address.is_unspecified:
    return names
  return names + [f'[{host}]' if address.version == 6 else host]


def _return_freed_memory() -> None:
  """glibc raises its mmap threshold as large buffers are freed, after
  which freed upload and photo buffers stay in the heap for good: fixing
  the threshold (128 KiB) keeps every large buffer in its own mapping,
  given back to the system when freed."""
  try:
    libc = ctypes.CDLL('libc.so.6')
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
  except (OSError, AttributeError):
    pass  # not glibc: its allocator decides


def serve(config, workdir: str, token, listener, *, checkpoint: str = 'best',
          weights: str = 'raw', hosts=('127.0.0.1',), tls=None) -> None:
  """Restores and compiles the model, then answers requests on `listener`
  (a bound socket) until SIGINT or SIGTERM; `token` (None: none) guards
  /v1/*; `hosts` are the Host names answered; `tls` (certificate, key) or
  None for plain HTTP."""
  _return_freed_memory()
  scorer = restore.load(config, workdir, checkpoint, weights)
  calibration = scorer.calibration
  threshold = ('none reached the validation target: all uncertain'
               if calibration.threshold is None
               else f'{calibration.threshold:.3f}')
  print(f'{config.model.name}, checkpoint step {scorer.step}, '
        f'temperature {calibration.temperature:.3f}, uncertain below '
        f'{threshold}')
  recipe = preparation.Recipe.from_config(config)
  functions = device.device_functions(scorer)
  failed = threading.Event()
  batcher = batching.Batcher(functions, config.serve.max_batch_size,
                             config.serve.max_wait_ms / 1000,
                             jax.device_count(),
                             on_failure=lambda why: failed.set())
  seconds = device.warm_up(functions['predict'], batcher.shapes,
                           recipe.image_size)
  print(f'Compiled batch shapes {list(batcher.shapes)} in {seconds:.1f} s.')
  gc.freeze()  # what the start made stays: collections read only requests'
  guard = connections.Guard.from_config(config.serve)
  service = scoring.Service(
      batcher, config, recipe, scorer,
      service_app.model_card(config, scorer, batcher.shapes), guard)
  certificate, key = tls or (None, None)
  server = uvicorn.Server(uvicorn.Config(
      service_app.create_app(service, token, hosts), log_level='warning',
      access_log=False, lifespan='off',
      http=connections.guarded_protocol(guard),
      timeout_keep_alive=config.serve.keep_alive_s,
      ssl_certfile=certificate, ssl_keyfile=key))
  host, port = listener.getsockname()[:2]
  shown = f'[{host}]' if ':' in host else host
  print(f"Serving http{'s' if tls else ''}://{shown}:{port}/ (the page; API "
        f"under /v1/), {'token required' if token else 'no token'}; Host "
        f"names answered: {', '.join(hosts)}; Ctrl-C stops.", flush=True)
  batcher.start()
  threading.Thread(target=_exit_after_failure, daemon=True, name='exit',
                   args=(failed, server,
                         config.serve.device_failure_exit_s)).start()
  # uvicorn shuts down on SIGINT or SIGTERM, then raises the signal again
  # for the handler that was there before it: this one, so that a clean
  # stop ends the process with status 0, as a stopped training run does.
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, _exit_cleanly)
  try:
    server.run(sockets=[listener])
  finally:
    batcher.stop()
  if failed.is_set():
    print(f'error: the device thread ended ({batcher.failure}); exiting '
          f'with status {DEVICE_FAILURE_STATUS} for a restart',
          file=sys.stderr, flush=True)
    raise SystemExit(DEVICE_FAILURE_STATUS)


def _exit_after_failure(failed, server, seconds: float) -> None:
  """Once the device thread has died, answers 503 for `seconds` (health
  checks see it), then stops the server."""
  failed.wait()
  threading.Event().wait(seconds)
  server.should_exit = True


def _exit_cleanly(signum, frame):
  del signum, frame
  raise SystemExit(0)
