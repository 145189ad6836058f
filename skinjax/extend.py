r"""Adds new conditions to a trained run from a few photos of each, into a
new run folder.

  python -m skinjax.extend --from runs/dermnet --workdir runs/dermnet_plus \
      --image_dir new_conditions/ [--method head|nearest_mean] \
      [--checkpoint best|latest|STEP] [--weights raw|ema] \
      [--config.extend.KEY=VALUE ...]

NEW_CONDITIONS/ holds one folder per condition, named as its class, of
photos read as `evaluate --image_dir` reads them (unusable files are counted
and skipped). WORKDIR becomes an ordinary run folder whose classes are the
run's plus the new ones: predict, serve, export and evaluate read it as any
run. `--method nearest_mean` adds each condition's mean backbone feature as
its head row; `head` (the default) then fits the head on the new photos
beside a class-balanced sample of the run's own training photos. The
calibration is refitted; config.json records the parent, the classes added
and every photo used (config.extension). Rerunning the same command on a
finished WORKDIR does nothing; a WORKDIR holding another run is refused.
The run must be calibrated (as predict needs). Knobs: config.extend
(skinjax/config/defaults.py). A condition added from a handful of photos is
a research signal, not a clinical one.
"""

from absl import app
from absl import flags

from skinjax.cli import checks
from skinjax.cli import compilation_cache
from skinjax.cli import flags as cli_flags
from skinjax.cli import main as cli_main
from skinjax.extending import rows
from skinjax.extending import runner

_RUN = cli_flags.define_run_flags(__name__, run_flag='from',
                                  also=' and the extend.* keys')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'The new run folder: the extended run is written here.',
    required=True)
_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None, 'One folder per new condition, named as the class, '
    'of its photos.', required=True)
_METHOD = flags.DEFINE_enum(
    'method', None, list(rows.METHODS),
    'nearest_mean: the new rows are the scaled class means (no fitting); '
    'head: then fitted (default: config.extend.method, head).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = runner.config_from(_RUN.workdir.value, _RUN.asked(),
                              _METHOD.value)
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  compilation_cache.enable(config)
  runner.extend(config, _RUN.workdir.value, _WORKDIR.value,
                _IMAGE_DIR.value, checkpoint=_RUN.checkpoint.value,
                weights=_RUN.weights.value)


if __name__ == '__main__':
  cli_main.run(main)
