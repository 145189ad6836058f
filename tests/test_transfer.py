"""Starting from other weights, and training only part of a model."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import REPO, cpu_devices, run_module, tiny_run_flags
import sharded_checkpoint
from skinjax import models
from skinjax.config import defaults
from skinjax.models import transfer
from skinjax.training import optimizer as optim


def _variables(model, classes_seed=0):
  return model.init(jax.random.PRNGKey(classes_seed),
                    jnp.zeros((1, 32, 32, 3)), train=False)


def _model(name='resnet18', num_classes=6, **overrides):
  config = defaults.get_config().model
  config.name, config.width = name, 8
  config.update(overrides)
  return models.create_model(config, num_classes)


@pytest.mark.slow  # the default tier's 10-minute budget
def test_merge_keeps_backbone_and_reinitialises_a_resized_head():
  source = _variables(_model(num_classes=6), 0)
  fresh = _variables(_model(num_classes=4), 1)
  merged = transfer.merge(fresh, source, 'test')
  np.testing.assert_array_equal(merged['params']['conv_init']['kernel'],
                                source['params']['conv_init']['kernel'])
  np.testing.assert_array_equal(merged['batch_stats']['bn_init']['mean'],
                                source['batch_stats']['bn_init']['mean'])
  np.testing.assert_array_equal(merged['params']['head']['kernel'],
                                fresh['params']['head']['kernel'])
  assert merged['params']['head']['kernel'].shape[-1] == 4


@pytest.mark.slow  # the default tier's 10-minute budget
def test_merge_refuses_another_architecture():
  source = _variables(_model('resnet18'))
  fresh = _variables(_model('resnet34'))
  with pytest.raises(ValueError, match='another architecture'):
    transfer.merge(fresh, source, 'a resnet18 run')


@pytest.mark.slow  # two training runs: ~30 s
def test_checkpoint_of_one_dataset_starts_a_model_for_another(
    small_data_dir, tmp_path):
  """A 6-class synthetic run initialises a 2-class image_folder run."""
  import image_trees  # pylint: disable=g-import-not-at-top
  first = tmp_path / 'synthetic'
  result = run_module('skinjax.train', [
      '--config', 'configs/synthetic.py', '--workdir', str(first)]
                      + tiny_run_flags(small_data_dir, num_train_steps=10))
  assert result.returncode == 0, result.stderr[-2000:]
  image_trees.write_class_tree(str(tmp_path / 'clinic'),
                               {'': {'spots': 12, 'rings': 12}})
  second = tmp_path / 'clinic_run'
  result = run_module('skinjax.train', [
      '--config', 'configs/synthetic.py', '--workdir', str(second)]
                      + tiny_run_flags(
                          str(tmp_path / 'tfds'), num_train_steps=2,
                          **{'dataset.name': 'image_folder/clinic',
                             'dataset.manual_dir': str(tmp_path / 'clinic'),
                             'model.init_from': str(first),
                             'optimizer.backbone_learning_rate_factor': 0,
                             'batch_size': 8, 'eval_batch_size': 8}))
  assert result.returncode == 0, result.stderr[-2000:]
  assert f'Starting from {first} weights.' in result.stdout
  before = transfer.checkpoint_variables(str(first))
  after = transfer.checkpoint_variables(str(second))
  assert after['params']['head']['kernel'].shape[-1] == 2
  # The backbone was frozen (learning-rate factor 0): unchanged.
  np.testing.assert_array_equal(after['params']['conv_init']['kernel'],
                                before['params']['conv_init']['kernel'])


@pytest.mark.parametrize('factor', [0.0, 0.1])
def test_backbone_learning_rate_factor(factor):
  config = defaults.get_config().optimizer
  config.warmup_steps, config.learning_rate, config.momentum = 0, 1.0, 0.0
  config.weight_decay, config.backbone_learning_rate_factor = 0.0, factor
  tx = optim.create_optimizer(config, optim.learning_rate_schedule(config, 10))
  params = {'conv': {'kernel': jnp.ones((3, 3))}, 'head': {'bias': jnp.ones(2)}}
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['head']['bias'], -1.0)
  np.testing.assert_allclose(updates['conv']['kernel'], -factor)


def test_frozen_batch_stats_do_not_move_in_training():
  images = jax.random.uniform(jax.random.PRNGKey(0), (4, 32, 32, 3)) * 255
  for freeze, moves in ((False, True), (True, False)):
    model = _model(freeze_batch_stats=freeze)
    variables = _variables(model)
    _, updates = model.apply(variables, images, train=True,
                             mutable=['batch_stats'])
    changed = not np.allclose(updates['batch_stats']['bn_init']['mean'],
                              variables['batch_stats']['bn_init']['mean'])
    assert changed == moves


# Three processes of a quarter-minute each: the slow tier (for the default
# tier's 10 minutes).
@pytest.mark.slow
def test_init_from_reads_a_checkpoint_saved_on_other_devices(tmp_path):
  """Saved on 4 devices, read on 1 and on 2: a multi-GPU run seeds a laptop
  fine-tune (Orbax, left to itself, refuses another topology)."""
  script = os.path.join(REPO, 'tests', 'sharded_checkpoint.py')

  def run(action, devices):
    return subprocess.run(
        [sys.executable, script, action, str(tmp_path)], cwd=REPO,
        env=dict(os.environ, **cpu_devices(devices)), capture_output=True,
        text=True, timeout=300)

  saved = run('save', 4)
  assert saved.returncode == 0, saved.stderr[-2000:]
  assert jax.device_count() == 1
  sharded_checkpoint.check(str(tmp_path))
  result = run('check', 2)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'restored on 2 devices' in result.stdout
