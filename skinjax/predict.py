r"""Ranked differentials for new photos, with calibrated probabilities.

  python -m skinjax.predict --workdir runs/ham10000 photo.jpg clinic/ 'more/*.png' \
      [--checkpoint best|latest|STEP] [--weights raw|ema] [--top_k 3] \
      [--output predictions.csv|.json|results/] [--saliency DIR]

Images, folders (searched recursively) and globs in, DICOM files among them
(a .dcm suffix, or none and the DICM preamble; colour photographs, each frame
scored as `file#frameN`, results tied to the instance by its UIDs: see
docs/dicom.md); for each photo the top-k
classes with temperature-scaled probabilities, flagged 'uncertain' when the
top probability is below the selective-prediction threshold fitted on
validation, and 'unfamiliar' when the photo is less like the training photos
than all but 5% of validation photos (see skinjax.evaluate); and the skin
tone (ITA group) measured on the photo. The config is the run's own
config.json (only evaluation-time keys may be changed, as in evaluate). It
needs the run folder alone, never the dataset, and writes nothing into it; a
checkpoint not yet calibrated is an error that names the `evaluate` command
that calibrates it. A file that cannot be read is reported and skipped, as
is a photo of more pixels than --config.dataset.max_image_pixels.

The output supports a clinician's judgement; it is not a diagnosis.
"""

from absl import app
from absl import flags

from skinjax.cli import checks
from skinjax.cli import compilation_cache
from skinjax.cli import flags as cli_flags
from skinjax.cli import main as cli_main
from skinjax.inference import predict as predict_lib

_RUN = cli_flags.define_run_flags(__name__)
_TOP_K = flags.DEFINE_integer('top_k', 3, 'Classes listed per photo.',
                              lower_bound=1)
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Write the predictions to this .csv or .json file, or '
    'into this folder (ending in /): results.json and a DICOM Structured '
    'Report per DICOM instance scored.')
_SALIENCY = flags.DEFINE_string(
    'saliency', None,
    'Write a Grad-CAM overlay for the top class of each photo into this '
    'folder; with --output DIR/, each DICOM frame\'s overlay also goes into '
    'DIR as a DICOM Secondary Capture in its study.')


def main(argv):
  if len(argv) < 2:
    raise app.UsageError('Name at least one image, folder or glob.')
  config = _RUN.evaluation_config()
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  compilation_cache.enable(config)
  predict_lib.predict(config, _RUN.workdir.value, argv[1:],
                      checkpoint=_RUN.checkpoint.value,
                      weights=_RUN.weights.value, top_k=_TOP_K.value,
                      output=_OUTPUT.value, saliency_dir=_SALIENCY.value)


if __name__ == '__main__':
  cli_main.run(main)
