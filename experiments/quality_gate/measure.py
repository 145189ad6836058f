r"""The quality gate measured on a recipe's dataset, fitted exactly as a
run's calibration fits it (skinjax.inference.quality.fit on its training
and validation photos), no model needed:

  python experiments/quality_gate/measure.py --config configs/ham10000.py:cpu \
      [--manual_dir ../shared/data/ham10000] [--workdir RUN] \
      [--output ham10000.json]

1. 'no skin in view': AUROC of the appearance distance for everyday photos
   that are not skin (scikit-image's and matplotlib's bundled photos, each
   whole and as five crops, and charts and pages this script draws) against
   the test split's photos; the share of test photos the check refuses and
   the share of everyday photos it flags, at the fitted threshold.
2. Graded degradations of the test photos (Gaussian blur of a given share
   of the short side; gains that darken or brighten): the share the gate
   flags at each strength, by reason, and the AUROC of the check's own
   measure (sharpness, bright end, share blown out) for degraded against
   original photos; and the share of the original test photos flagged by
   skin tone (ITA group).
3. With --workdir (a trained run of the same recipe): the model's top-1 on
   the original and degraded test photos the gate passes against those it
   flags.
"""

import argparse
import importlib.util
import io
import json
import os
import sys

import numpy as np
from PIL import Image
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top
import matplotlib
matplotlib.use('Agg')
from matplotlib import pyplot as plt
import skimage

from skinjax import data
from skinjax.data import pipeline
from skinjax.data import preprocess
from skinjax.inference import preparation
from skinjax.inference import quality
from skinjax.inference import restore
from skinjax.inference import skin_tone

SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field',
                  'immunohistochemistry', 'retina',
                  'camera', 'coins', 'moon', 'page', 'text', 'brick', 'grass',
                  'gravel', 'cell', 'logo', 'colorwheel', 'clock')
MATPLOTLIB_PHOTOS = ('grace_hopper.jpg', 'Minduka_Present_Blue_Pack.png',
                     'logo2.png')
BLUR = (0.005, 0.01, 0.02, 0.04)  # sigma as a share of the short side
DARKEN = (0.5, 0.25, 0.12)
BRIGHTEN = (1.5, 2.0, 3.0)


def load_config(spec: str):
  path, _, variant = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('recipe', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def rgb(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.stack([image] * 3, axis=-1)
  if image.dtype != np.uint8:
    image = (255 * image / max(1e-9, image.max())).astype(np.uint8)
  return image[..., :3]


def drawn_images() -> list:
  """Everyday images that are not photos: charts, a page of text, a form."""
  images = []
  rng = np.random.default_rng(0)
  for kind in ('line', 'bar', 'scatter', 'text', 'pie', 'image'):
    figure = plt.figure(figsize=(4, 3), dpi=64)
    axes = figure.add_subplot()
    if kind == 'line':
      axes.plot(np.cumsum(rng.normal(size=(200, 3)), axis=0))
    elif kind == 'bar':
      axes.bar(range(8), rng.random(8), color='tab:blue')
    elif kind == 'scatter':
      axes.scatter(*rng.normal(size=(2, 300)), c=rng.random(300))
    elif kind == 'text':
      axes.axis('off')
      axes.text(0, 0.5, 'Referral letter\nDear colleague,\n' * 3, fontsize=9)
    elif kind == 'pie':
      axes.pie(rng.random(5))
    else:
      axes.imshow(rng.random((16, 16)), cmap='viridis')
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    plt.close(figure)
    images.append((f'drawn_{kind}', rgb(Image.open(buffer).convert('RGB'))))
  return images


def everyday_images() -> list:
  """(name, uint8 RGB) of photos that are not skin, whole and cropped."""
  whole = [(name, rgb(getattr(skimage.data, name)()))
           for name in SKIMAGE_PHOTOS]
  whole.append(('motorcycle', rgb(skimage.data.stereo_motorcycle()[0])))
  folder = os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data',
                        'sample_data')
  whole += [(name, rgb(Image.open(os.path.join(folder, name)).convert('RGB')))
            for name in MATPLOTLIB_PHOTOS]
  images = []
  for name, image in whole:
    height, width = image.shape[:2]
    images.append((name, image))
    for top, left in ((0, 0), (0, width // 2), (height // 2, 0),
                      (height // 2, width // 2), (height // 4, width // 4)):
      images.append((f'{name}_crop', image[top:top + height // 2,
                                          left:left + width // 2]))
  return images + drawn_images()


def auroc(positive, negative) -> float:
  """P(a positive scores above a negative), ties counted half."""
  positive, negative = np.asarray(positive), np.asarray(negative)
  greater = (positive[:, None] > negative[None]).mean()
  ties = (positive[:, None] == negative[None]).mean()
  return float(greater + ties / 2)


def split_photos(builder, config, split, limit=None) -> tuple:
  source = pipeline.data_source(builder, split,
                                     config.dataset.held_out_classes)
  indices = range(len(source))
  if limit is not None and len(source) > limit:
    indices = np.linspace(0, len(source) - 1, limit).round().astype(int)
  photos, labels = [], []
  for i in indices:
    photos.append(np.asarray(preprocess.open_image(
        source[int(i)]['image']).convert('RGB')))
    labels.append(int(source[int(i)]['label']))
  return photos, np.array(labels)


def degrade(photo: np.ndarray, kind: str, strength: float) -> np.ndarray:
  if kind == 'blur':
    sigma = strength * min(photo.shape[:2])
    return ndimage.gaussian_filter(photo, (sigma, sigma, 0))
  return np.clip(photo * strength, 0, 255).astype(np.uint8)


def measure(config, args) -> dict:
  builder = data.load_builder(config.dataset)
  image_size = preparation.Recipe.from_config(config).image_size
  limit = config.evaluation.quality.fit_examples
  training, _ = split_photos(builder, config, config.dataset.train_split,
                             limit)
  validation, _ = split_photos(builder, config, config.dataset.eval_split,
                               limit)
  statistics = quality.fit(config, image_size, training, validation)
  gate = quality.Gate.from_config(config, image_size, statistics)
  test, labels = split_photos(builder, config, 'test', args.test_limit)
  found = {'dataset': config.dataset.name, 'image_size': image_size,
           'fitted_on': {'training': len(training),
                         'validation': len(validation)},
           'test_photos': len(test), 'thresholds': {
               'appearance_distance': gate.appearance_model['threshold'],
               'sharpness': gate.min_sharpness}}
  # 1. No skin in view.
  test_measures = [quality.measure(p, gate) for p in test]
  test_verdicts = [quality.verdict(m, gate) for m in test_measures]
  everyday = everyday_images()
  everyday_verdicts = [quality.assess(p, gate) for _, p in everyday]
  distances = [m['appearance_distance'] for m in test_measures]
  found['no_skin'] = {
      'everyday_images': len(everyday),
      'auroc': auroc([v['appearance_distance'] for v in everyday_verdicts],
                     distances),
      'test_refused': float(np.mean([v['reasons'] == ['no_skin'] or
                                     'no_skin' in v['reasons']
                                     for v in test_verdicts])),
      'test_flagged_any_reason': float(np.mean(
          [v['flagged'] for v in test_verdicts])),
      'everyday_flagged': float(np.mean(
          ['no_skin' in v['reasons'] for v in everyday_verdicts])),
      'everyday_flagged_any_reason': float(np.mean(
          [v['flagged'] for v in everyday_verdicts])),
      'whole_photos_missed': sorted(
          name for (name, _), v in zip(everyday, everyday_verdicts)
          if not name.endswith('_crop') and not v['flagged']),
      'cat_and_rocket': {name: v['reasons'] for (name, _), v in
                         zip(everyday, everyday_verdicts)
                         if name in ('chelsea', 'rocket')}}
  region = skin_tone.region_for(config.dataset.name)
  tones = np.array([skin_tone.estimate(p, region)['group'] for p in test])
  flagged = np.array([v['flagged'] for v in test_verdicts])
  found['test_flagged_by_skin_tone'] = {
      group: {'photos': int((tones == group).sum()),
              'flagged': float(flagged[tones == group].mean())}
      for group in skin_tone.GROUP_NAMES + (skin_tone.UNKNOWN,)
      if (tones == group).any()}
  # 2. Graded degradations.
  measure_of = {'blur': 'sharpness', 'darken': 'bright_end',
                'brighten': 'bright_share'}
  sign = {'blur': -1, 'darken': -1, 'brighten': 1}
  graded = []
  sets = {'original': (test, test_verdicts)}
  for kind, strengths in (('blur', BLUR), ('darken', DARKEN),
                          ('brighten', BRIGHTEN)):
    for strength in strengths:
      photos = [degrade(p, kind, strength) for p in test]
      measures = [quality.measure(p, gate) for p in photos]
      verdicts = [quality.verdict(m, gate) for m in measures]
      sets[f'{kind}_{strength}'] = (photos, verdicts)
      key = measure_of[kind]
      graded.append({
          'degradation': kind, 'strength': strength,
          'flagged': float(np.mean([v['flagged'] for v in verdicts])),
          'by_reason': {r: float(np.mean([r in v['reasons']
                                          for v in verdicts]))
                        for r in quality.REASONS},
          f'{key}_auroc': auroc([sign[kind] * m[key] for m in measures],
                                [sign[kind] * m[key]
                                 for m in test_measures])})
  found['graded'] = graded
  # 3. What passing and flagging are worth to a trained model.
  if args.workdir:
    found['model'] = model_accuracy(config, args.workdir, sets, labels)
  return found


def model_accuracy(config, workdir: str, sets: dict, labels) -> dict:
  """Top-1 on the photos the gate passes and on those it flags, over the
  original and all degraded test photos, and per set."""
  scorer = restore.load(config, workdir, 'best', 'raw')
  recipe = preparation.Recipe.from_config(config)
  correct, flagged, per_set = [], [], {}
  for name, (photos, verdicts) in sets.items():
    images = []
    for photo in photos:
      buffer = io.BytesIO()
      Image.fromarray(photo).save(buffer, format='PNG')
      images.append(recipe.model_input(recipe.normalise(buffer.getvalue())))
    logits = scorer.outputs(np.stack(images), config.eval_batch_size,
                            f'scoring {name}')['logits']
    predicted = logits.argmax(axis=-1)
    flags = np.array([v['flagged'] for v in verdicts])
    per_set[name] = {'flagged': float(flags.mean()),
                     **scores(predicted, labels, ~flags, 'passed'),
                     **scores(predicted, labels, flags, 'flagged')}
    correct.append(predicted)
    flagged.append(flags)
  predicted, flagged = np.concatenate(correct), np.concatenate(flagged)
  every = np.concatenate([labels] * len(sets))
  return {'checkpoint_step': scorer.step, 'photos': int(len(predicted)),
          'share_flagged': float(flagged.mean()),
          **scores(predicted, every, ~flagged, 'passed'),
          **scores(predicted, every, flagged, 'flagged'),
          'per_set': per_set}


def scores(predicted, labels, mask, name: str) -> dict:
  """Top-1 and balanced accuracy (mean recall over the classes present) of
  the photos in `mask`; None where there are none. Balanced accuracy
  matters: a model that sees nothing in a ruined photo says the majority
  class, which top-1 rewards on an imbalanced set."""
  if not mask.any():
    return {f'top1_{name}': None, f'balanced_accuracy_{name}': None}
  predicted, labels = predicted[mask], labels[mask]
  recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
  return {f'top1_{name}': float(np.mean(predicted == labels)),
          f'balanced_accuracy_{name}': float(np.mean(recalls)),
          f'photos_{name}': int(mask.sum())}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', required=True,
                      help='configs/X.py or configs/X.py:VARIANT')
  parser.add_argument('--manual_dir', default='')
  parser.add_argument('--data_dir', default='')
  parser.add_argument('--workdir', default='',
                      help='a trained run of the recipe (for part 3)')
  parser.add_argument('--test_limit', type=int, default=1000,
                      help='test photos, evenly spaced, at most')
  parser.add_argument('--output', default='')
  args = parser.parse_args()
  config = load_config(args.config)
  if args.manual_dir:
    config.dataset.manual_dir = args.manual_dir
  if args.data_dir:
    config.dataset.data_dir = args.data_dir
  found = measure(config, args)
  text = json.dumps(found, indent=2)
  print(text)
  if args.output:
    with open(args.output, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  main()
