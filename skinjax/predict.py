r"""Ranked differentials for new photos, with calibrated probabilities.

  python -m skinjax.predict --workdir runs/ham10000 photo.jpg clinic/ 'more/*.png' \
      [--checkpoint best|latest|STEP] [--weights raw|ema] [--top_k 3] \
      [--output predictions.csv|.json] [--saliency DIR]

Images, folders (searched recursively) and globs in; for each photo the top-k
classes with temperature-scaled probabilities, flagged 'uncertain' when the
top probability is below the selective-prediction threshold fitted on
validation, and 'unfamiliar' when the photo is less like the training photos
than all but 5% of validation photos (see skinjax.evaluate); and the skin
tone (ITA group) measured on the photo. The config is the run's own config.json
(only evaluation-time keys may be changed, as in evaluate). A file that
cannot be read is reported and skipped, as is a photo of more pixels than
--config.dataset.max_image_pixels.

The output supports a clinician's judgement; it is not a diagnosis.
"""

import os
import sys

from absl import app
from absl import flags
import numpy as np

from skinjax.cli import checks
from skinjax.cli import flags as cli_flags
from skinjax.cli import photos
from skinjax.data import pipeline
from skinjax.data import preprocess
from skinjax.data.prepare import files
from skinjax.evaluation import metrics
from skinjax.evaluation import outputs
from skinjax.evaluation import saliency
from skinjax.evaluation import skin_tone
from skinjax.run_folder import run_config
from skinjax.serving import differential
from skinjax.serving import restore

_RUN = cli_flags.define_run_flags()
_TOP_K = flags.DEFINE_integer('top_k', 3, 'Classes listed per photo.',
                              lower_bound=1)
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Write the predictions to this .csv or .json file.')
_SALIENCY = flags.DEFINE_string(
    'saliency', None,
    'Write a Grad-CAM overlay for the top class of each photo into this '
    'folder.')


class NoUsablePhoto(ValueError):
  """None of the files named is an image that can be scored."""


def main(argv):
  if len(argv) < 2:
    raise app.UsageError('Name at least one image, folder or glob.')
  if _OUTPUT.value and not _OUTPUT.value.endswith(('.csv', '.json')):
    raise app.UsageError(f'--output={_OUTPUT.value}: use a .csv or .json '
                         'file name')
  try:
    predict(_RUN.evaluation_config(), argv[1:])
  except (checks.ConfigError, run_config.RunFolderError, files.CollectionError,
          restore.CheckpointNotFound, NoUsablePhoto) as e:
    sys.exit(f'error: {e}')


def predict(config, patterns) -> None:
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  paths, loaded, _ = photos.load(patterns, config.dataset)
  if not loaded:
    raise NoUsablePhoto(f'none of the {len(paths)} files is a usable image')

  checkpoint = restore.load(config, _RUN.workdir.value, _RUN.checkpoint.value,
                            _RUN.weights.value)
  calibration = checkpoint.calibration
  source = [{'image': image, 'label': 0} for _, image in loaded]
  result = outputs.predict(
      checkpoint.eval_step, checkpoint.state,
      pipeline.eval_dataset(source, config, 0, 1), checkpoint.mesh)
  print(f'{config.model.name}, checkpoint step {checkpoint.step}, temperature '
        f'{calibration.temperature:.3f}\n')
  probabilities = metrics.softmax(result['logits'] / calibration.temperature)
  region = skin_tone.region_for(config.dataset.name)
  rows = differential.differentials(
      probabilities, checkpoint.class_names, _TOP_K.value,
      calibration.threshold,
      unfamiliar=checkpoint.flag_unfamiliar(checkpoint.unfamiliarity(result)),
      skin_tones=[skin_tone.estimate(preprocess.open_image(image), region)
                  for _, image in loaded])
  for row, (path, _) in zip(rows, loaded):
    row['file'] = path
  print(differential.table(rows, calibration.threshold))
  if _OUTPUT.value:
    differential.write(rows, _OUTPUT.value)
    print(f'written to {_OUTPUT.value}')
  if _SALIENCY.value:
    _write_saliency(config, checkpoint, loaded, rows,
                    probabilities.argmax(axis=-1))


def _write_saliency(config, checkpoint, loaded, rows, top) -> None:
  """A Grad-CAM overlay of each photo's top class, as the model saw it."""
  os.makedirs(_SALIENCY.value, exist_ok=True)
  images = np.stack([preprocess.center_crop(
      preprocess.open_image(image), pipeline.eval_image_size(config),
      config.augment.eval_crop_fraction) for _, image in loaded])
  maps = saliency.grad_cam_batches(checkpoint.model, checkpoint.state, images,
                                   top, checkpoint.mesh,
                                   config.eval_batch_size)
  for i, ((path, _), cam) in enumerate(zip(loaded, maps)):
    name, p = rows[i]['differential'][0]
    stem = os.path.splitext(os.path.basename(path))[0]
    saliency.save_overlay(
        images[i], cam, f'{name} ({p:.2f})',
        os.path.join(_SALIENCY.value, f'{i:04d}_{stem}_gradcam.png'))
  print(f'Grad-CAM overlays written to {_SALIENCY.value}/')


if __name__ == '__main__':
  app.run(main, flags_parser=cli_flags.parse_flags)
