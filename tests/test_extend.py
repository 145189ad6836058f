"""Extending a trained run with new conditions from a few photos
(skinjax.extend): the old head rows kept, the new ones the scaled class
means before any fitting, the lineage in config.json, and an extended run
scored as any run is; bad folders refused in one line."""

import dataclasses
import hashlib
import json
import os

import jax
import numpy as np
import pytest

import image_trees
from helpers import REPO, SERVICE_TOKEN, run_module, saved_state
from skinjax.evaluation import metrics as metrics_lib
from skinjax.extending import conditions
from skinjax.extending import lineage
from skinjax.extending import old_photos
from skinjax.extending import runner
from skinjax.inference import calibration
from skinjax.inference import forward
from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.run_folder import class_names as class_names_lib
from skinjax.run_folder import run_config
from skinjax.training import head_fit

NEW = ('new_infection', 'new_rash')  # sorted: their label order
PHOTOS = 5  # per condition: 4 to fit on, 1 to validate on


@pytest.fixture(scope='module')
def new_conditions(tmp_path_factory):
  """NEW_CONDITIONS/<condition>/img_<i>.jpg, PHOTOS of each."""
  root = tmp_path_factory.mktemp('new_conditions')
  image_trees.write_class_tree(root, {'': {name: PHOTOS for name in NEW}},
                               seed=500)
  return root


def _extend(parent, workdir, tree, method, **extend):
  config = runner.config_from(
      str(parent), {f'extend.{k}': v for k, v in extend.items()}, method)
  return runner.extend(config, str(parent), str(workdir), str(tree))


@pytest.fixture(scope='module')
def nearest_mean(trained_run, new_conditions, tmp_path_factory):
  """(workdir, result) of the no-training extension."""
  workdir = tmp_path_factory.mktemp('extended') / 'nearest_mean'
  return workdir, _extend(trained_run[0], workdir, new_conditions,
                          'nearest_mean')


@pytest.fixture(scope='module')
def new_rows_only(trained_run, new_conditions, tmp_path_factory):
  """(workdir, result) of a head fit in which only the new rows train."""
  workdir = tmp_path_factory.mktemp('extended') / 'head'
  return workdir, _extend(trained_run[0], workdir, new_conditions, 'head',
                          train_old_rows=False, views=2, epochs=5,
                          replay_per_class=4)


def _params(workdir):
  step = restore.restore(run_config.read(workdir), str(workdir)).step
  return saved_state(workdir, step)['params']


def _old_rows_kept(workdir, parent_dir) -> tuple:
  """(the parent's params, the extended run's, the number of old classes),
  once the extended head's old columns and biases are found bit-identical
  to the parent's."""
  parent_params, params = _params(parent_dir), _params(workdir)
  old_head, head = parent_params['head'], params['head']
  old = old_head['kernel'].shape[1]
  assert head['kernel'].shape == (old_head['kernel'].shape[0], old + len(NEW))
  np.testing.assert_array_equal(head['kernel'][:, :old], old_head['kernel'])
  np.testing.assert_array_equal(head['bias'][:old], old_head['bias'])
  return parent_params, params, old


def _files_by_digest(tree):
  return {hashlib.sha256(p.read_bytes()).hexdigest(): p
          for p in sorted(tree.rglob('*.jpg'))}


def test_nearest_mean_rows_are_the_scaled_class_means(
    nearest_mean, trained_run, new_conditions):
  workdir, _ = nearest_mean
  parent_params, params, old = _old_rows_kept(workdir, trained_run[0])
  old_kernel, old_bias = (parent_params['head'][k] for k in ('kernel', 'bias'))
  kernel, bias = params['head']['kernel'], params['head']['bias']
  # The parent's penultimate features of each condition's training photos,
  # computed here as scoring computes them.
  config = run_config.read(trained_run[0])
  parent = restore.restore(config, str(trained_run[0]))
  parent = dataclasses.replace(parent, eval_step=forward.jit_eval_step(
      parent.mesh, model=parent.model, features=True))
  recipe = preparation.Recipe.from_config(config)
  files = _files_by_digest(new_conditions)
  lineage_ = run_config.read(workdir).extension
  norm = np.linalg.norm(old_kernel, axis=0).mean()
  # The old classes' training-feature means, as the parent's calibration
  # saved them for the unfamiliar flag.
  old_means = calibration.read(config, str(trained_run[0]), parent.step,
                               'raw', restore.params_digest(
                                   parent.state.params))[1]['means']
  present = old_means[~np.isnan(old_means).any(axis=1)]
  own_logit = np.mean([m @ old_kernel[:, c] + old_bias[c]
                       for c, m in enumerate(old_means)
                       if not np.isnan(m).any()])
  for i, name in enumerate(NEW):
    photos = [files[digest] for condition, digest in lineage_.train_photos
              if condition == name]
    assert len(photos) == PHOTOS - 1
    images = np.stack([recipe.model_input(recipe.read(str(p)))
                       for p in photos])
    mean = parent.outputs(images, config.eval_batch_size)['features'].mean(0)
    offset = mean - present.mean(axis=0)
    np.testing.assert_allclose(kernel[:, old + i],
                               offset / np.linalg.norm(offset) * norm,
                               rtol=1e-4, atol=1e-6)
    # At its own mean, the new class scores what old classes score at
    # theirs, on average.
    assert mean @ kernel[:, old + i] + bias[old + i] == pytest.approx(
        own_logit, rel=1e-4, abs=1e-4)


def test_old_rows_stay_bit_identical_when_only_new_rows_train(
    new_rows_only, nearest_mean, trained_run):
  workdir, result = new_rows_only
  parent_params, params, old = _old_rows_kept(workdir, trained_run[0])
  for name in parent_params:  # the backbone untouched
    if name != 'head':
      for a, b in zip(*(jax.tree.leaves(p[name]) for p in (params,
                                                          parent_params))):
        np.testing.assert_array_equal(a, b)
  config = run_config.read(workdir)
  assert config.extend.train_old_rows is False
  assert config.extension.replayed_photos == 4 * old  # replay_per_class=4
  assert result['epoch'] is not None
  if result['epoch'] > 0:  # it moved from the class means
    assert not np.array_equal(params['head']['kernel'][:, old:],
                              _params(nearest_mean[0])['head']['kernel'][
                                  :, old:])


def test_a_head_fit_moves_only_the_columns_it_may():
  """head_fit with a start and a column mask: the frozen columns come back
  bit for bit, the validation figures it reports are those of the head it
  returns (so the frozen columns did not move during the fit either), and
  without the mask the same columns do move."""
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 8)) * 3
  labels = np.repeat(np.arange(3), 40)
  features = (centres[labels] + rng.normal(size=(120, 8)))[None].astype(
      np.float32)
  start = (rng.normal(size=(8, 3)).astype(np.float32),
           rng.normal(size=3).astype(np.float32))
  start[0][:, 2], start[1][2] = 0, 0  # the new class's row still to learn
  settings = head_fit.Settings(epochs=20, batch_size=32, learning_rate=5e-2,
                               weight_decay=1e-4, label_smoothing=0.0, seed=0,
                               metric='balanced_accuracy')
  names = ['a', 'b', 'new']
  masked = head_fit.fit(features, labels, features[0], labels, names,
                        settings, start=start,
                        trainable=np.array([False, False, True]))
  assert masked.epoch > 0
  np.testing.assert_array_equal(masked.kernel[:, :2], start[0][:, :2])
  np.testing.assert_array_equal(masked.bias[:2], start[1][:2])
  assert not np.array_equal(masked.kernel[:, 2], start[0][:, 2])
  again = metrics_lib.classification_metrics(
      features[0] @ masked.kernel + masked.bias, labels, names)
  assert again['nll'] == pytest.approx(masked.validation['nll'], rel=1e-3)
  free = head_fit.fit(features, labels, features[0], labels, names, settings,
                      start=start)
  assert not np.array_equal(free.kernel[:, :2], start[0][:, :2])


def test_the_lineage_is_written_and_read_back(nearest_mean, trained_run,
                                              new_conditions):
  workdir, _ = nearest_mean
  parent_dir = str(trained_run[0])
  parent = restore.restore(run_config.read(parent_dir), parent_dir)
  config = run_config.read(workdir)
  ext = config.extension
  assert ext.parent == os.path.abspath(parent_dir)
  assert ext.parent_step == parent.step and ext.parent_weights == 'raw'
  assert ext.parent_params_digest == restore.params_digest(
      parent.state.params)
  assert ext.classes_added == NEW
  assert config.extend.method == 'nearest_mean' and ext.replayed_photos == 0
  train, validation = set(ext.train_photos), set(ext.validation_photos)
  assert not train & validation
  files = _files_by_digest(new_conditions)
  assert train | validation == {(p.parent.name, d) for d, p in files.items()}
  assert sorted(c for c, _ in ext.validation_photos) == list(NEW)  # 1 each
  assert class_names_lib.read(workdir) == parent.class_names + list(NEW)


def test_the_extended_run_predicts_over_the_extended_classes(
    new_rows_only, new_conditions, tmp_path):
  workdir, _ = new_rows_only
  names = class_names_lib.read(workdir)
  output = tmp_path / 'predictions.json'
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), '--top_k', str(len(names)),
      '--output', str(output), str(new_conditions)])
  assert result.returncode == 0, result.stderr[-3000:]
  rows = json.loads(output.read_text())
  assert len(rows) == len(NEW) * PHOTOS
  for row in rows:
    assert sorted(name for name, _ in row['differential']) == sorted(names)
    assert sum(p for _, p in row['differential']) == pytest.approx(1, 1e-4)


@pytest.mark.slow
def test_the_extended_run_exports(new_rows_only, tmp_path):
  from skinjax.exporting import writer  # pylint: disable=g-import-not-at-top
  workdir, _ = new_rows_only
  config = run_config.read(workdir)
  meta = writer.export(config, str(workdir), 'stablehlo',
                       str(tmp_path / 'model.stablehlo'))
  assert meta['class_names'] == class_names_lib.read(workdir)
  card = (tmp_path / 'MODEL_CARD.md').read_text()
  assert all(name in card for name in NEW)


@pytest.mark.slow
def test_the_extended_run_serves_and_evaluates_its_new_classes(
    new_rows_only, new_conditions, tmp_path):
  """The service answers over the extended classes; evaluate --image_dir
  scores the new conditions' folders as classes of the run."""
  from skinjax.service import client  # pylint: disable=g-import-not-at-top
  workdir, _ = new_rows_only
  names = class_names_lib.read(workdir)
  process, url = client.start_service(
      workdir, [f'--config.serve.top_k={len(names)}'], tmp_path / 'serve.log',
      env={'SKINJAX_SERVE_TOKEN': SERVICE_TOKEN}, cwd=REPO)
  try:
    photo = next(new_conditions.rglob('*.jpg'))
    status, body = client.Client(url, SERVICE_TOKEN).predict(
        [(photo.name, photo.read_bytes())])
  finally:
    process.terminate()
    process.wait(timeout=60)
  assert status == 200, body
  assert sorted(n for n, _ in body['photos'][0]['differential']) == sorted(
      names)
  result = run_module('skinjax.evaluate', ['--workdir', str(workdir),
                                           '--image_dir', str(new_conditions)])
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((workdir / 'eval' / f'dir_{new_conditions.name}' /
                        'metrics.json').read_text())
  assert metrics['num_examples'] == len(NEW) * PHOTOS
  assert [metrics['per_class'][n]['support'] for n in NEW] == [PHOTOS] * 2


def test_a_condition_of_one_photo_is_refused_in_one_line(trained_run,
                                                         tmp_path):
  """Through the command: the unreadable file counted on one line, then
  the one-photo condition refused in one line naming its folder."""
  tree = tmp_path / 'conditions'
  image_trees.write_class_tree(tree, {'': {'enough': 3, 'lonely': 1}},
                               seed=900)
  image_trees.write(str(tree / 'enough' / 'broken.jpg'), b'not a photo')
  result = run_module('skinjax.extend', [
      '--from', str(trained_run[0]), '--workdir', str(tmp_path / 'new'),
      '--image_dir', str(tree)])
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert lines[-1] == (f'error: {tree / "lonely"}: 1 usable photo; a new '
                       'condition needs at least 2 (one to fit on, one to '
                       'validate on)')
  assert [line for line in lines if line.startswith('skipped ')] == [
      line for line in lines if line.startswith(
          f'skipped 1 of 5 files under {tree} ({tree / "enough" / "broken.jpg"}'
          ': ')]
  assert not os.path.exists(tmp_path / 'new' / 'config.json')


@pytest.mark.parametrize('folders, message', [
    ({'Synthetic_Annular_Ring': 3}, "'synthetic_annular_ring' is already a "
     'class of the run'),
    ({'empty': 0, 'fine': 3}, 'empty: 0 usable photos'),
    ({}, 'no condition folders'),
])
def test_a_bad_conditions_folder_is_refused(trained_run, tmp_path, folders,
                                            message):
  tree = tmp_path / 'conditions'
  tree.mkdir()
  image_trees.write_class_tree(tree, {'': folders}, seed=950)
  for name in folders:
    (tree / name).mkdir(exist_ok=True)
  config = run_config.read(trained_run[0])
  with pytest.raises(conditions.ConditionsError, match=message) as error:
    conditions.read(str(tree), class_names_lib.read(trained_run[0]),
                    preparation.Recipe.from_config(config), 0.2, 0)
  assert '\n' not in str(error.value)


def test_without_the_parent_dataset_nothing_is_replayed_and_it_says_so(
    trained_run, tmp_path):
  config = run_config.read(trained_run[0])
  config.dataset.data_dir = str(tmp_path)  # not prepared there
  found = old_photos.find(config, class_names_lib.read(trained_run[0]), 20, 0)
  assert found.replay == [] and found.validation is None
  assert 'is not prepared in' in found.note and 'no old photos' in found.note


def test_only_extend_and_evaluation_keys_may_change(trained_run):
  parent = str(trained_run[0])
  config = runner.config_from(parent, {'extend.views': 2,
                                       'eval_batch_size': 16}, 'nearest_mean')
  assert (config.extend.views, config.extend.method,
          config.eval_batch_size) == (2, 'nearest_mean', 16)
  with pytest.raises(run_config.RunFolderError,
                     match='config.optimizer.learning_rate=1.0'):
    runner.config_from(parent, {'optimizer.learning_rate': 1.0})


def test_a_rerun_does_nothing_and_another_run_is_refused(
    nearest_mean, trained_run, new_conditions):
  workdir, _ = nearest_mean
  before = sorted(os.listdir(workdir / 'checkpoints'))
  assert _extend(trained_run[0], workdir, new_conditions,
                 'nearest_mean') == {}
  assert sorted(os.listdir(workdir / 'checkpoints')) == before
  with pytest.raises(lineage.WorkdirHoldsAnotherRun,
                     match='holds another run .*differs in .*extend.method'):
    _extend(trained_run[0], workdir, new_conditions, 'head', epochs=1)
