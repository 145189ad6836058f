r"""The few-shot protocol of `skinjax.extend` on DermNet NZ: a run trained
with some groups held out is extended with k photos of some of them, for
several k and several draws of the photos, and each extension is measured
on the archive's test folder.

  python experiments/rare_conditions/fewshot.py --parent RUN \
      --archive ../shared/data/dermnet_nz --root /tmp/fewshot \
      [--add hair_loss,warts_molluscum_viral] [--ks 5,10,20] [--seeds 0,1,2] \
      [--methods head,nearest_mean] [--output results.json]

RUN must have been trained with the --add groups (and any others) in
dataset.held_out_classes. For each k and seed, k photos of each added group
are drawn from the archive's train folder (the seed picks which) into
ROOT/photos/k<k>_s<seed>/<group>/ (symbolic links), and `python -m
skinjax.extend` makes ROOT/runs/<method>_k<k>_s<seed> of them. The backbone
is the parent's in every extension, so the test photos' features are
computed once, with the parent, and each extension's head (its checkpoint)
and feature statistics score them:

- new classes: recall on their own test photos, precision over all test
  photos (those of groups still held out included, as a clinic would meet
  them);
- old classes: balanced accuracy on their test photos, the parent's and
  the extension's (forgetting);
- the unfamiliar flag's AUROC (its configured score) for the test photos of
  the held-out groups not added, against those of the extension's classes;
- the extension's wall time (the command, start to end).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

# pylint: disable=g-import-not-at-top
from skinjax import models
from skinjax.data.builders import dermnet
from skinjax.data.prepare import decode
from skinjax.evaluation import metrics as metrics_lib
from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.run_folder import run_config

FOLDERS = dict(dermnet.CATEGORIES)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


def _photos(folder: str) -> list:
  return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                if name.lower().endswith(IMAGE_SUFFIXES))


def test_set(archive: str, groups) -> tuple:
  """[(path, group)] of the archive's test folder, for these groups."""
  return [(path, group) for group in groups
          if os.path.isdir(os.path.join(archive, 'test', FOLDERS[group]))
          for path in _photos(os.path.join(archive, 'test', FOLDERS[group]))]


def features_once(parent: str, photos, cache: str) -> dict:
  """The parent's logits and features of every test photo (cached)."""
  if os.path.exists(cache):
    with np.load(cache) as saved:
      return {k: saved[k] for k in saved.files}
  config = run_config.for_evaluation(parent, {})
  checkpoint = restore.load(config, parent)
  recipe = preparation.Recipe.from_config(config)
  images, kept = [], []
  for i, (path, _) in enumerate(photos):
    try:
      images.append(recipe.model_input(recipe.read(path)))
      kept.append(i)
    except (decode.BadImageError, OSError) as e:
      print(f'skipped {path}: {e}', file=sys.stderr)
  result = checkpoint.outputs(np.stack(images), config.eval_batch_size,
                              desc='test features')
  saved = {'logits': np.asarray(result['logits']),
           'features': np.asarray(result['features']),
           'kept': np.asarray(kept)}
  np.savez(cache, **saved)
  return saved


def head_logits(workdir: str, features: np.ndarray) -> tuple:
  """(logits of the run's head on `features`, the restored checkpoint)."""
  config = run_config.for_evaluation(workdir, {})
  checkpoint = restore.load(config, workdir)
  head = checkpoint.state.params[models.HEAD]
  kernel, bias = np.asarray(head['kernel']), np.asarray(head['bias'])
  return features @ kernel + bias, checkpoint


def _balanced(predicted, labels, classes) -> float:
  return float(np.mean([np.mean(predicted[labels == c] == c)
                        for c in classes]))


def measure(logits, features, checkpoint, groups, added, held_out) -> dict:
  """The figures of one run's logits (and features) on the test photos
  (`groups`, each photo's group name)."""
  names = checkpoint.class_names
  index = {name: i for i, name in enumerate(names)}
  labels = np.array([index.get(g, -1) for g in groups])
  predicted = logits.argmax(axis=-1)
  old = [index[g] for g in sorted(set(groups)) if g in index and (
      g not in added)]
  figures = {'old_balanced_accuracy': _balanced(predicted, labels, old)}
  if added:
    new = [index[g] for g in added]
    figures['new_recall'] = float(np.mean(
        [np.mean(predicted[labels == c] == c) for c in new]))
    figures['new_precision'] = float(np.mean(
        [np.mean(labels[predicted == c] == c) if (predicted == c).any()
         else 0.0 for c in new]))
  unseen = np.array([g in held_out and g not in added for g in groups])
  if unseen.any():
    known = np.array([g in index for g in groups])
    score = checkpoint.calibration.unfamiliar_score
    scores = checkpoint.unfamiliarity({'logits': logits,
                                       'features': features})[score]
    figures['unfamiliar_auroc'] = float(metrics_lib.roc_auc(
        scores[unseen | known], unseen[unseen | known]))
  return figures


def draw(archive, added, k, seed, folder) -> None:
  """k photos of each added group, picked by `seed`, linked into
  folder/<group>/."""
  rng = np.random.default_rng(seed)
  for group in added:
    photos = _photos(os.path.join(archive, 'train', FOLDERS[group]))
    os.makedirs(os.path.join(folder, group), exist_ok=True)
    for path in rng.choice(photos, size=k, replace=False):
      link = os.path.join(folder, group, os.path.basename(path))
      if not os.path.lexists(link):
        os.symlink(os.path.abspath(path), link)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--parent', required=True)
  parser.add_argument('--archive', required=True)
  parser.add_argument('--root', required=True)
  parser.add_argument('--add', default='hair_loss,warts_molluscum_viral')
  parser.add_argument('--ks', default='5,10,20')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--methods', default='head,nearest_mean')
  parser.add_argument('--output')
  args = parser.parse_args()
  added = args.add.split(',')
  parent_config = run_config.for_evaluation(args.parent, {})
  held_out = list(parent_config.dataset.held_out_classes)
  missing = [g for g in added if g not in held_out]
  if missing:
    sys.exit(f'error: --add {missing}: not held out of {args.parent}')
  os.makedirs(args.root, exist_ok=True)
  parent_names = json.load(open(os.path.join(args.parent,
                                             'class_names.json')))
  photos = test_set(args.archive, parent_names + held_out)
  test = features_once(args.parent, photos, os.path.join(
      args.root, 'test_features.npz'))
  features = test['features']
  groups = [photos[i][1] for i in test['kept']]
  logits, parent = head_logits(args.parent, features)
  drift = float(np.abs(logits - test['logits']).max())
  assert drift < 1e-3, f'the head on the features is not the model: {drift}'
  results = {'parent': measure(logits, features, parent, groups, [],
                               held_out),
             'added': added, 'held_out': held_out,
             'test_photos': len(groups), 'extensions': []}
  print(json.dumps(results['parent']))
  for k in map(int, args.ks.split(',')):
    for seed in map(int, args.seeds.split(',')):
      folder = os.path.join(args.root, 'photos', f'k{k}_s{seed}')
      draw(args.archive, added, k, seed, folder)
      for method in args.methods.split(','):
        workdir = os.path.join(args.root, 'runs', f'{method}_k{k}_s{seed}')
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, '-m', 'skinjax.extend', '--from', args.parent,
             '--workdir', workdir, '--image_dir', folder, '--method', method],
            cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if done.returncode:
          sys.exit(f'error: extend {workdir}: {done.stderr[-2000:]}')
        logits, checkpoint = head_logits(workdir, features)
        row = {'k': k, 'seed': seed, 'method': method,
               'seconds': round(seconds, 1),
               **measure(logits, features, checkpoint, groups, added,
                         held_out)}
        results['extensions'].append(row)
        print(json.dumps(row), flush=True)
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
