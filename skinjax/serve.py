r"""The service: ranked differentials for photos over HTTP, and a page for
clinicians to drop photos on, from one process.

  python -m skinjax.serve --workdir runs/ham10000 [--host 127.0.0.1] \
      [--port 8000] [--checkpoint best|latest|STEP] [--weights raw|ema] \
      [--token_file FILE] [--config.serve.KEY=VALUE ...]

Open http://HOST:PORT/ for the page; the JSON API is POST /v1/predict
(multipart photos or DICOM files, parts named 'photo'; ?grad_cam=true adds
overlays, ?report=dicom each DICOM instance's Structured Report), POST
/dicomweb/studies (DICOMweb STOW-RS: docs/dicom.md), GET /v1/model and GET
/healthz. Photos are prepared and scored exactly as
predict scores photo files, with the run's own config and calibration, from
the run folder alone (a checkpoint not yet calibrated is an error naming the
`evaluate` command that calibrates it). Nothing is written to disk.

It listens on 127.0.0.1 unless --host says otherwise; on an address other
machines can reach it does not start without a token, read from
--token_file or $SKINJAX_SERVE_TOKEN (never a flag, which `ps` shows), that
every /v1/ and /dicomweb/ request must then carry as "Authorization: Bearer
TOKEN". With serve.tls_certificate and serve.tls_key it serves HTTPS;
off loopback without them it warns that photos and the token cross the
network in clear text. Only the Host names in serve.allowed_hosts (and --host) are answered.

It exits 0 on SIGINT or SIGTERM, 1 on an error at start (one line), and 70
when its device thread has died (after serve.device_failure_exit_s seconds
of 503s), for a supervisor (systemd Restart=on-failure) to restart it.

Batching and limits are config keys (skinjax/config/defaults.py, section
serve; change them with --config.serve.KEY=VALUE), by default:
"""

import os
import sys

from absl import app
from absl import flags

from skinjax.cli import checks
from skinjax.cli import compilation_cache
from skinjax.cli import flags as cli_flags
from skinjax.cli import main as cli_main
from skinjax.config import defaults
from skinjax.service import access
from skinjax.service import server
from skinjax.service import tls

__doc__ += ''.join(f'  serve.{key} = {value!r}\n' for key, value in
                   defaults.get_config().serve.items())

_RUN = cli_flags.define_run_flags(__name__)
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
  config = _RUN.evaluation_config()
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  compilation_cache.enable(config)
  token = access.required_token(_HOST.value, _TOKEN_FILE.value, os.environ)
  certificate_and_key = tls.files(config.serve)
  if certificate_and_key is None and not access.is_loopback(_HOST.value):
    print(f'WARNING: --host={_HOST.value} without TLS: photos, results and '
          'the token cross the network in clear text. Set config.serve.'
          'tls_certificate and config.serve.tls_key.', file=sys.stderr,
          flush=True)
  listener = access.listen(_HOST.value, _PORT.value)
  server.serve(config, _RUN.workdir.value, token, listener,
               checkpoint=_RUN.checkpoint.value, weights=_RUN.weights.value,
               hosts=server.allowed_hosts(config, _HOST.value),
               tls=certificate_and_key)


if __name__ == '__main__':
  cli_main.run(main)
