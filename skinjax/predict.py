r"""Ranked differentials for new photos, with calibrated probabilities.

  python -m skinjax.predict --workdir runs/ham10000 photo.jpg clinic/ 'more/*.png' \
      [--top_k 3] [--output predictions.csv|.json] [--saliency DIR] [--weights raw|ema]

Images, folders (searched recursively) and globs in; for each photo the top-k
classes with temperature-scaled probabilities, flagged 'uncertain' when the
top probability is below the selective-prediction threshold fitted on
validation (see skinjax.evaluate). The run's own config.json is used unless
--config is given. A file that cannot be read is reported and skipped.

The output supports a clinician's judgement; it is not a diagnosis.
"""

import csv
import glob
import json
import os
import sys

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from skinjax import config_lib
from skinjax import evaluation
from skinjax import inference
from skinjax import metrics
from skinjax import saliency
from skinjax import sharding
from skinjax.data import image_dir
from skinjax.data import image_files
from skinjax.data import pipeline
from skinjax.data import preprocess

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file the checkpoint was trained with; default: '
    'WORKDIR/config.json, written by training.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Training run folder holding checkpoints/.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', 'best',
    "'latest', 'best' (by validation config.best_metric) or a step number.")
_WEIGHTS = flags.DEFINE_enum(
    'weights', 'raw', ['raw', 'ema'],
    "'ema': the moving average of the weights (runs with config.ema_decay).")
_TOP_K = flags.DEFINE_integer('top_k', 3, 'Classes listed per photo.',
                              lower_bound=1)
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Write the predictions to this .csv or .json file.')
_SALIENCY = flags.DEFINE_string(
    'saliency', None,
    'Write a Grad-CAM overlay for the top class of each photo into this '
    'folder.')

_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                   '.webp')


def expand_paths(patterns) -> list:
  """Files named, found under folders, or matched by globs, in order, once."""
  paths = []
  for pattern in patterns:
    if os.path.isdir(pattern):
      paths += sorted(os.path.join(d, f) for d, _, files in os.walk(pattern)
                      for f in files if f.lower().endswith(_IMAGE_SUFFIXES)
                      and not f.startswith('.'))
    elif glob.has_magic(pattern):
      paths += sorted(p for p in glob.glob(pattern, recursive=True)
                      if os.path.isfile(p))
    else:
      paths.append(pattern)
  return list(dict.fromkeys(paths))


def load_images(paths, max_short_side: int) -> tuple:
  """([(path, JPEG bytes)], [(path, reason)]): every file prepared like a
  dataset photo, or the reason it could not be."""
  loaded, failed = [], []
  for path in paths:
    try:
      loaded.append((path, image_dir.load_image(path, max_short_side)))
    except image_files.BadImageError as e:
      failed.append((path, str(e)))
    except OSError as e:
      failed.append((path, f'unreadable: {e.strerror or e}'))
  return loaded, failed


def differentials(probabilities, class_names, top_k: int,
                  threshold) -> list:
  """Per photo: the top-k (class, probability) and the 'uncertain' flag."""
  rows = []
  for p in probabilities:
    order = np.argsort(-p, kind='stable')[:top_k]
    rows.append({'differential': [(class_names[i], float(p[i]))
                                  for i in order],
                 'uncertain': threshold is None or float(p[order[0]]) < threshold})
  return rows


def _write(rows, path: str) -> None:
  if path.endswith('.json'):
    with open(path, 'w') as f:
      json.dump(rows, f, indent=2)
    return
  top_k = max(len(r['differential']) for r in rows)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['file', 'uncertain'] + [
        f'{kind}_{i}' for i in range(1, top_k + 1)
        for kind in ('class', 'probability')])
    for r in rows:
      writer.writerow([r['file'], r['uncertain']] + [
          v for name, p in r['differential'] for v in (name, f'{p:.6f}')])


def _print_table(rows, threshold) -> None:
  width = max(len(os.path.basename(r['file'])) for r in rows)
  for r in rows:
    ranked = '  '.join(f'{name} {p:.3f}' for name, p in r['differential'])
    flag = '  UNCERTAIN' if r['uncertain'] else ''
    print(f"{os.path.basename(r['file']):<{width}}  {ranked}{flag}")
  rule = ('no threshold reached the validation target: all uncertain'
          if threshold is None else f'top probability < {threshold:.3f}')
  print(f'\nuncertain = {rule}. Probabilities are calibrated on validation; '
        'a ranked differential, not a diagnosis.')


def _load_config(workdir: str):
  if _CONFIG.value is not None:
    return _CONFIG.value
  path = os.path.join(workdir, 'config.json')
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except FileNotFoundError:
    sys.exit(f'error: {path} not found: pass --config (the training config)')


def _saliency_maps(model, state, images, classes, mesh, batch_size) -> list:
  cam_fn = jax.jit(lambda variables, x, c: saliency.grad_cam(
      model, variables, x, c))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  maps = []
  for start in range(0, len(images), batch_size):
    x, c = images[start:start + batch_size], classes[start:start + batch_size]
    pad = (-len(x)) % jax.device_count()  # whole batches per device
    x, c = np.concatenate([x, x[:1].repeat(pad, 0)]), np.concatenate(
        [c, c[:1].repeat(pad)])
    batch = sharding.shard_batch({'x': x, 'c': c}, mesh)
    maps += list(np.asarray(cam_fn(variables, batch['x'], batch['c']))
                 [:len(x) - pad])
  return maps


def main(argv):
  if len(argv) < 2:
    raise app.UsageError('Name at least one image, folder or glob.')
  if _OUTPUT.value and not _OUTPUT.value.endswith(('.csv', '.json')):
    raise app.UsageError(f'--output={_OUTPUT.value}: use a .csv or .json '
                         'file name')
  workdir = _WORKDIR.value
  config = _load_config(workdir)
  config_lib.exit_if_invalid(config)
  paths = expand_paths(argv[1:])
  loaded, failed = load_images(paths, config.dataset.max_short_side)
  for path, reason in failed:
    print(f'skipped {path}: {reason}', file=sys.stderr)
  if not loaded:
    sys.exit(f'error: none of the {len(paths)} files is a usable image')

  checkpoint = inference.load(config, workdir, _CHECKPOINT.value,
                              _WEIGHTS.value)
  calibration = checkpoint.calibration
  source = [{'image': image, 'label': 0} for _, image in loaded]
  outputs = evaluation.predict(
      checkpoint.eval_step, checkpoint.state,
      pipeline.eval_dataset(source, config, 0, 1), checkpoint.mesh)
  print(f'{config.model.name}, checkpoint step {checkpoint.step}, temperature '
        f'{calibration.temperature:.3f}\n')
  probabilities = metrics.softmax(outputs['logits'] / calibration.temperature)
  rows = differentials(probabilities, checkpoint.class_names, _TOP_K.value,
                       calibration.threshold)
  for row, (path, _) in zip(rows, loaded):
    row['file'] = path
  _print_table(rows, calibration.threshold)
  if _OUTPUT.value:
    _write(rows, _OUTPUT.value)
    print(f'written to {_OUTPUT.value}')

  if _SALIENCY.value:
    os.makedirs(_SALIENCY.value, exist_ok=True)
    images = np.stack([preprocess.center_crop(
        preprocess.open_image(image), config.image_size,
        config.augment.eval_crop_fraction) for _, image in loaded])
    top = probabilities.argmax(axis=-1)
    maps = _saliency_maps(checkpoint.model, checkpoint.state, images, top,
                          checkpoint.mesh, config.eval_batch_size)
    for i, ((path, _), cam) in enumerate(zip(loaded, maps)):
      name, p = rows[i]['differential'][0]
      stem = os.path.splitext(os.path.basename(path))[0]
      saliency.save_overlay(
          images[i], cam, f'{name} ({p:.2f})',
          os.path.join(_SALIENCY.value, f'{i:04d}_{stem}_gradcam.png'))
    print(f'Grad-CAM overlays written to {_SALIENCY.value}/')


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir'])
  app.run(main, flags_parser=config_lib.parse_flags)
