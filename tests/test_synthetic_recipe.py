"""The README's first command, end to end: slow (minutes), run by CI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import dataset_config, REPO, mean_colour_linear_accuracy
from skinjax import data
from skinjax.data import pipeline
from skinjax.data import preprocess


def _mean_colours(builder, split):
  source = pipeline.data_source(builder, split)
  features = np.stack([
      np.asarray(preprocess.open_image(source[i]['image']).convert('RGB'))
      .reshape(-1, 3).mean(0) for i in range(len(source))])
  labels = np.array([source[i]['label'] for i in range(len(source))])
  return features, labels


@pytest.mark.slow
def test_launch_train_reaches_090_far_above_mean_colour(tmp_path):
  data_dir, workdir = tmp_path / 'tfds', tmp_path / 'run'
  result = subprocess.run(
      ['./launch.sh', 'train', 'configs/synthetic.py', '--workdir',
       str(workdir), f'--config.dataset.data_dir={data_dir}',
       '--config.wandb.mode=disabled'],
      cwd=REPO, env=dict(os.environ, SKINJAX_VENV=sys.prefix),
      capture_output=True, text=True, timeout=1800)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / 'eval' / 'test' / 'metrics.json') as f:
    test = json.load(f)
  assert test['num_examples'] == 1200
  assert test['top1'] >= 0.90  # chance: 1/6

  builder = data.get_builder(dataset_config('synthetic_lesions', str(data_dir)))
  linear = mean_colour_linear_accuracy(_mean_colours(builder, 'train'),
                                       _mean_colours(builder, 'test'))
  print(f"CNN test top1 {test['top1']:.4f}; linear on mean colour {linear:.4f}")
  assert linear <= test['top1'] - 0.5
