"""`serve` as a function of values: a run's calibrated checkpoint restored
from its run folder alone, compiled for every batch shape, and answering
HTTP requests on a listening socket until SIGINT or SIGTERM. Writes nothing
to disk."""

import signal

import anyio
import jax
import uvicorn

from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.service import app as service_app
from skinjax.service import batching
from skinjax.service import device


def serve(config, workdir: str, token, listener, *, checkpoint: str = 'best',
          weights: str = 'raw') -> None:
  """Restores and compiles the model, then answers requests on `listener`
  (a bound socket) until SIGINT or SIGTERM; `token` (None: none) guards
  /v1/*."""
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
  batcher = batching.Batcher(functions, config.serve.max_batch_size,
                             config.serve.max_wait_ms / 1000,
                             jax.device_count())
  seconds = device.warm_up(functions['predict'], batcher.shapes,
                           recipe.image_size)
  print(f'Compiled batch shapes {list(batcher.shapes)} in {seconds:.1f} s.')
  service = service_app.Service(
      batcher, config, recipe, scorer,
      service_app.model_card(config, scorer, batcher.shapes),
      anyio.CapacityLimiter(config.serve.decode_threads))
  server = uvicorn.Server(uvicorn.Config(
      service_app.create_app(service, token), log_level='warning',
      access_log=False, lifespan='off',
      limit_concurrency=config.serve.max_concurrent_requests))
  host, port = listener.getsockname()[:2]
  shown = f'[{host}]' if ':' in host else host
  print(f'Serving http://{shown}:{port}/ (the page; API under /v1/), '
        f"{'token required' if token else 'no token'}; Ctrl-C stops.",
        flush=True)
  batcher.start()
  # uvicorn shuts down on SIGINT or SIGTERM, then raises the signal again
  # for the handler that was there before it: this one, so that a clean
  # stop ends the process with status 0, as a stopped training run does.
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, _exit_cleanly)
  try:
    server.run(sockets=[listener])
  finally:
    batcher.stop()


def _exit_cleanly(signum, frame):
  del signum, frame
  raise SystemExit(0)
