"""The real datasets in ../shared/data (skipped where that folder is absent).

Nothing from that folder is copied into the repository; preparation writes
into a temporary folder.
"""

import collections
import json
import os

import pytest

from helpers import REPO, dataset_config, run_module
from skinjax import data
from skinjax.data import pipeline
from skinjax.data.builders import dermnet

SHARED = os.path.join(os.path.dirname(REPO), 'shared', 'data')
# Each test prepares thousands of real photos (48 s for the three here):
# the slow tier, to keep the default suite well under 10 minutes.
pytestmark = [pytest.mark.skipif(not os.path.isdir(SHARED),
                                 reason='../shared/data is not here'),
              pytest.mark.slow]


def _prepared(name, manual_dir, data_dir):
  config = dataset_config(name, data_dir, manual_dir)
  data.prepare(data.get_builder(config), manual_dir)
  return data.get_builder(config)


def _report(builder):
  with open(os.path.join(builder.data_dir, 'prepare_report.json')) as f:
    return json.load(f)


def _files_per_folder(root):
  return {os.path.relpath(d, root): len(fs) for d, _, fs in os.walk(root) if fs}


def test_dermnet_nz_has_17_categories_and_every_file(tmp_path):
  # The report names the files themselves (links resolved), so does this.
  root = os.path.realpath(os.path.join(SHARED, 'dermnet_nz'))
  builder = _prepared('dermnet/23', root, tmp_path)
  report = _report(builder)
  names = builder.info.features['label'].names
  folders = dict(dermnet.CATEGORIES)
  assert len(report['classes_without_examples']) == 23 - 17
  files = _files_per_folder(root)
  dropped = collections.Counter(os.path.relpath(os.path.dirname(f), root)
                                for d in report['duplicates']
                                for f in d['dropped'])
  counts = report['class_counts']
  for name in names:
    for split in ('train', 'test'):
      folder = os.path.join(split, folders[name])
      stored = counts[split][name] + (counts['validation'][name]
                                      if split == 'train' else 0)
      assert stored + dropped[folder] == files.get(folder, 0), folder
  assert not report['skipped']


def test_ham10000_every_image_once_and_no_lesion_across_splits(tmp_path):
  builder = _prepared('ham10000', os.path.join(SHARED, 'ham10000'), tmp_path)
  report = _report(builder)
  assert report['metadata_rows'] == 10015
  assert sum(report['examples'].values()) == 10015
  split_of_lesion = {}
  for split in ('train', 'validation', 'test'):
    source = pipeline.data_source(builder, split)
    for i in range(len(source)):
      lesion = source[i]['lesion_id']
      assert split_of_lesion.setdefault(lesion, split) == split, lesion
  assert len(split_of_lesion) == 7470  # lesions in HAM10000


def test_ham10000_image_dir_scores_like_the_prepared_test_split(tmp_path):
  """A class-per-folder copy of the test split's original files, evaluated
  with --image_dir, gives the metrics of evaluating the prepared split."""
  manual_dir = os.path.join(SHARED, 'ham10000')
  builder = _prepared('ham10000', manual_dir, tmp_path / 'tfds')
  names = builder.info.features['label'].names
  source = pipeline.data_source(builder, 'test')
  for i in range(len(source)):
    example = source[i]
    folder = tmp_path / 'copy' / names[int(example['label'])]
    folder.mkdir(parents=True, exist_ok=True)
    original = os.path.join(manual_dir, example['id'].decode())
    os.symlink(original, folder / os.path.basename(original))
  flags = ['--config', 'configs/ham10000.py:resnet50',
           '--workdir', str(tmp_path / 'run')] + [f'--config.{k}={v}' for k, v in {
               'model.name': 'resnet18', 'model.width': 8, 'image_size': 32,
               'batch_size': 32, 'eval_batch_size': 128, 'num_train_steps': 10,
               'optimizer.warmup_steps': 1, 'eval_every_steps': 10,
               'checkpoint_every_steps': 10, 'wandb.mode': 'disabled',
               'evaluation.quality.fit_examples': 300,
               'dataset.data_dir': tmp_path / 'tfds',
               'dataset.manual_dir': manual_dir}.items()]
  run = ['--workdir', str(tmp_path / 'run')]
  for module, args in (('skinjax.train', flags),
                       ('skinjax.evaluate', run + ['--split', 'test']),
                       ('skinjax.evaluate',
                        run + ['--image_dir', str(tmp_path / 'copy')])):
    result = run_module(module, args)
    assert result.returncode == 0, result.stderr[-3000:]
  metrics = {}
  for name in ('test', 'dir_copy'):
    with open(tmp_path / 'run' / 'eval' / name / 'metrics.json') as f:
      metrics[name] = json.load(f)
  assert metrics['dir_copy']['num_examples'] == len(source)
  assert not metrics['dir_copy']['image_dir']['skipped']
  assert (metrics['dir_copy']['confusion_matrix'] ==
          metrics['test']['confusion_matrix'])
  for key in ('top1', 'top3', 'balanced_accuracy', 'macro_f1',
              'macro_roc_auc', 'nll', 'ece'):
    assert metrics['dir_copy'][key] == pytest.approx(metrics['test'][key],
                                                     rel=1e-6), key
  # The quality gate judges the copied files as it judged the split.
  assert metrics['dir_copy']['quality'] == metrics['test']['quality']
