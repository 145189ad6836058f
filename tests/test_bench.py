"""The benchmark runs on tiny settings and writes a well-formed report.

Only that it runs is tested: speed lives in the benchmark's figures
(experiments/benchmarks/README.md), never in a timed test.
"""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from helpers import REPO, run_module
from skinjax.bench import input_pipeline
from skinjax.data.builders import lesion_drawing
from skinjax.models import efficientnet_lite
from skinjax.models import pretrained


def _assert_positive(row, keys):
  for key in keys:
    assert row[key] > 0, (key, row)


@pytest.mark.slow
def test_bench_writes_tables_and_json(tmp_path):
  output = tmp_path / 'bench.json'
  result = run_module('skinjax.bench', [
      '--sections=pipeline,train_step,end_to_end', '--models=resnet18',
      '--image_sizes=32', '--dtypes=float32', '--steps=2', '--warmup_steps=1',
      '--num_workers=0', '--pipeline_batches=2', '--num_images=12',
      '--config.model.width=8', '--config.batch_size=4',
      f'--output={output}'], timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Train step, synthetic batch' in result.stdout
  report = json.loads(output.read_text())
  assert {'machine', 'settings', 'config', 'pipeline', 'train_step',
          'notes'} <= report.keys()
  assert report['machine']['cpu_cores'] >= 1

  pipeline = report['pipeline']
  assert pipeline['num_examples'] == 12
  assert pipeline['mean_short_side'] == 256
  assert [(r['loader'], r['num_workers']) for r in pipeline['results']] == [
      ('plain loop', 0), ('grain', 0)]
  for row in pipeline['results']:
    _assert_positive(row, ['images_per_second', 'images_per_cpu_second'])

  [step] = report['train_step']
  assert (step['model'], step['image_size'], step['dtype'], step['width'],
          step['batch_size']) == ('resnet18', 32, 'float32', 8, 4)
  _assert_positive(step, ['compile_seconds', 'step_seconds',
                          'images_per_second', 'peak_memory_bytes',
                          'xla_memory_bytes', 'flops_per_step_per_device'])
  assert step['memory_source']
  _assert_positive(step['end_to_end'], ['images_per_second', 'step_seconds'])


def test_generated_photos_reuse_drawings_as_distinct_jpegs(tmp_path,
                                                           monkeypatch):
  # Thousands of photos from a few drawings: each photo must still be a
  # distinct image (preparation drops exact duplicates) of the right class.
  monkeypatch.setattr(input_pipeline, '_DRAWINGS_PER_CLASS', 1)
  num_classes = len(lesion_drawing.CLASS_NAMES)
  input_pipeline.write_photos(str(tmp_path), num_classes + 2)
  photos = {int(p.stem): (p.parent.name, np.asarray(Image.open(p), float))
            for p in tmp_path.glob('*/*.jpg')}
  assert sorted(photos) == list(range(num_classes + 2))
  for reused in (num_classes, num_classes + 1):
    (folder, pixels), (first_folder, first) = (photos[reused],
                                               photos[reused - num_classes])
    assert folder == first_folder
    assert 0 < np.abs(pixels - first).mean() < 8  # same drawing, new noise
  assert np.abs(photos[0][1] - photos[1][1]).mean() > 8


@pytest.mark.slow
def test_the_accelerator_script_runs_its_cpu_path(tmp_path):
  """experiments/accelerator/run.sh with skinjax already importable (no
  wheels), at toy sizes: the JSON it writes holds the step and end-to-end
  figures, with augmentation on the device."""
  env = dict(os.environ, MODELS='resnet18', WIDTH='8',
             IMAGE_SIZE='32', DTYPE='bfloat16', BATCH='4', STEPS='2',
             NUM_IMAGES='12', NUM_WORKERS='1', PYTHONPATH=REPO)
  env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env['PATH']
  result = subprocess.run(
      ['bash', os.path.join(REPO, 'experiments', 'accelerator', 'run.sh'), '',
       str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((tmp_path / 'accelerator.json').read_text())
  assert [(r['model'], r['image_size'], r['dtype']) for r in
          report['train_step']] == [('resnet18', 32, 'bfloat16')]
  for row in report['train_step']:
    _assert_positive(row, ['images_per_second', 'peak_memory_bytes'])
    _assert_positive(row['end_to_end'], ['images_per_second'])
    assert row['end_to_end']['augment_on_device'] is True
    assert row['end_to_end']['num_workers'] == 1


def _torch_lite(name, num_classes):
  """skinjax.bench.torch_step's EfficientNet-Lite `name`, as the benchmark
  builds it, in eval mode."""
  from skinjax.bench import torch_step  # pylint: disable=g-import-not-at-top
  blocks = efficientnet_lite.blocks(*efficientnet_lite.VARIANTS[name])
  return torch_step.EfficientNetLite(
      [dataclasses.asdict(b) for b in blocks], num_classes, dropout_rate=0.2,
      drop_path_rate=0.2).eval()


def _imagenet_state_dict(torch, name):
  return torch.load(pretrained.weights_file(name), weights_only=True)


def test_torch_efficientnet_lite_has_skinjax_layers():
  """The side by side's PyTorch Lite0 has the flax model's parameters and
  BatchNorm statistics, the output shape, and the layout of the PyTorch
  port whose ImageNet weights skinjax converts (they load, strictly)."""
  torch = pytest.importorskip('torch')
  net = _torch_lite('efficientnet_lite0', num_classes=7)
  images = np.zeros((2, 64, 64, 3), np.uint8)
  variables = jax.eval_shape(lambda: efficientnet_lite.create(
      'efficientnet_lite0', num_classes=7).init(
          jax.random.PRNGKey(0), images, train=False))
  size = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  assert sum(p.numel() for p in net.parameters()) == size(
      variables['params']) == 3_379_975
  assert sum(b.numel() for n, b in net.named_buffers()
             if n.endswith(('running_mean', 'running_var'))) == size(
                 variables['batch_stats'])
  assert net(torch.from_numpy(images)).shape == (2, 7)
  _torch_lite('efficientnet_lite0', 1000).load_state_dict(
      _imagenet_state_dict(torch, 'efficientnet_lite0'))


@pytest.mark.slow
def test_torch_efficientnet_lite_computes_skinjax_logits():
  """With the same ImageNet weights, the PyTorch Lite0 gives skinjax's
  logits: same layers, BatchNorm epsilon, ReLU6 and XLA's uneven 'SAME'
  padding of strided convs (64 px: every strided conv sees an even map)."""
  torch = pytest.importorskip('torch')
  net = _torch_lite('efficientnet_lite0', 1000)
  net.load_state_dict(_imagenet_state_dict(torch, 'efficientnet_lite0'))
  images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), np.uint8)
  ours = efficientnet_lite.create('efficientnet_lite0', num_classes=1000).apply(
      pretrained.imagenet_variables('efficientnet_lite0'), images, train=False)
  with torch.no_grad():
    theirs = net(torch.from_numpy(images)).numpy()
  np.testing.assert_allclose(theirs, ours, atol=2e-4, rtol=0)
