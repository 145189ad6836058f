r"""The service: ranked differentials for photos over HTTP, and a page for
clinicians to drop photos on, from one process.

  python -m skinjax.serve --workdir runs/ham10000 [--host 127.0.0.1] \
      [--port 8000] [--checkpoint best|latest|STEP] [--weights raw|ema] \
      [--token_file FILE] [--config.serve.KEY=VALUE ...]

Open http://HOST:PORT/ for the page; the JSON API is POST /v1/predict
(multipart photos, parts named 'photo'; ?grad_cam=true adds overlays),
GET /v1/model and GET /healthz. Photos are prepared and scored exactly as
predict scores photo files, with the run's own config and calibration.
Nothing is written to disk.

It listens on 127.0.0.1 unless --host says otherwise; on an address other
machines can reach it does not start without a token, read from
--token_file or $SKINJAX_SERVE_TOKEN (never a flag, which `ps` shows), that
every /v1/ request must then carry as "Authorization: Bearer TOKEN".

Batching and limits are config keys (skinjax/config/defaults.py, section
serve; change them with --config.serve.KEY=VALUE), by default:
"""

import os
import signal
import sys

from absl import app
from absl import flags
import anyio
import jax
import uvicorn

from skinjax.cli import checks
from skinjax.cli import flags as cli_flags
from skinjax.config import defaults
from skinjax.data import pipeline
from skinjax.run_folder import run_config
from skinjax.serving import access
from skinjax.serving import app as service_app
from skinjax.serving import batching
from skinjax.serving import restore
from skinjax.serving import scoring

__doc__ += ''.join(f'  serve.{key} = {value!r}\n' for key, value in
                   defaults.get_config().serve.items())

_RUN = cli_flags.define_run_flags()
_HOST = flags.DEFINE_string(
    'host', '127.0.0.1', 'Address to listen on. Any but a loopback address '
    '(127.0.0.1, ::1, localhost) needs a token.')
_PORT = flags.DEFINE_integer('port', 8000, 'Port to listen on (0: any free '
                             'one; the address is printed).', lower_bound=0,
                             upper_bound=65535)
_TOKEN_FILE = flags.DEFINE_string(
    'token_file', None, 'File holding the bearer token that /v1/ requests '
    f'must carry (readable by its owner only); else ${access.TOKEN_VARIABLE}.'
    ' Needed unless --host is a loopback address.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    config = _RUN.evaluation_config()
    # The evaluation batch too: a checkpoint without a calibration is
    # calibrated on validation first, as predict does.
    checks.validate_here(config, batch_keys=('eval_batch_size',))
    token = access.required_token(_HOST.value, _TOKEN_FILE.value,
                                  os.environ)
    listener = access.listen(_HOST.value, _PORT.value)
    serve(config, token, listener)
  except (checks.ConfigError, run_config.RunFolderError, access.AccessError,
          restore.CheckpointNotFound) as e:
    sys.exit(f'error: {e}')


def serve(config, token, listener) -> None:
  """Restores and compiles the model, then answers requests on `listener`
  until SIGINT or SIGTERM."""
  checkpoint = restore.load(config, _RUN.workdir.value, _RUN.checkpoint.value,
                            _RUN.weights.value)
  calibration = checkpoint.calibration
  threshold = ('none reached the validation target: all uncertain'
               if calibration.threshold is None
               else f'{calibration.threshold:.3f}')
  print(f'{config.model.name}, checkpoint step {checkpoint.step}, '
        f'temperature {calibration.temperature:.3f}, uncertain below '
        f'{threshold}')
  functions = scoring.device_functions(checkpoint)
  batcher = batching.Batcher(functions, config.serve.max_batch_size,
                             config.serve.max_wait_ms / 1000,
                             jax.device_count())
  seconds = scoring.warm_up(functions['predict'], batcher.shapes,
                            pipeline.eval_image_size(config))
  print(f'Compiled batch shapes {list(batcher.shapes)} in {seconds:.1f} s.')
  service = service_app.Service(
      batcher, config, checkpoint,
      service_app.model_card(config, checkpoint, batcher.shapes),
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


if __name__ == '__main__':
  app.run(main, flags_parser=cli_flags.parse_flags)
