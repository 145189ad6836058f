"""`extend` as a function of values: a trained run plus a few photos of each
new condition make a new run folder that predict, serve, export and
evaluate read as any run's.

The parent's backbone is kept as it is, so its features of every photo are
computed once (the new photos in extend.views views, the replayed and
validation photos in the centre crop) and the head alone is fitted on them:
minutes on a CPU. The calibration is refitted on validation photos of old
and new classes; the unfamiliar flag keeps the parent's feature covariance
and old class means (fitted on far more photos than a replay sample, in the
same feature space) and adds each new class's mean.
"""

import dataclasses
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from skinjax import errors
from skinjax import models
from skinjax.data import pipeline
from skinjax.evaluation import calibrate
from skinjax.evaluation import metrics as metrics_lib
from skinjax.extending import conditions
from skinjax.extending import lineage
from skinjax.extending import old_photos
from skinjax.extending import rows
from skinjax.inference import calibration as saved_calibration
from skinjax.inference import forward
from skinjax.inference import preparation
from skinjax.inference import quality
from skinjax.inference import restore
from skinjax.parallel import sharding
from skinjax.run_folder import checkpoint_folder
from skinjax.run_folder import class_names as class_names_lib
from skinjax.run_folder import environment
from skinjax.run_folder import lock
from skinjax.run_folder import run_config
from skinjax.training import checkpoints
from skinjax.training import head_fit
from skinjax.training import loss
from skinjax.training import optimizer
from skinjax.training import state as state_lib


def config_from(parent_dir: str, asked: dict, method: str | None = None):
  """The parent's config.json with the command line's changes: any extend.*
  key, and the evaluation-time keys evaluate may change (RunFolderError
  naming any other); `method`, when given, is extend.method."""
  ours = {k: v for k, v in asked.items() if k.split('.')[0] == 'extend'}
  config = run_config.for_evaluation(
      parent_dir, {k: v for k, v in asked.items() if k not in ours})
  for key, value in ours.items():
    *parents, leaf = key.split('.')
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  if method:
    config.extend.method = method
  return config


def extend(config, parent_dir: str, workdir: str, image_dir: str, *,
           checkpoint: str = 'best', weights: str = 'raw') -> dict:
  """Extends checkpoint `checkpoint` (`weights`) of the calibrated run in
  `parent_dir` with the conditions in `image_dir` (a folder each) into the
  run folder `workdir`, by config.extend; returns the validation figures
  ({} when `workdir` already held this very extension)."""
  if os.path.abspath(workdir) == os.path.abspath(parent_dir):
    raise lineage.WorkdirHoldsAnotherRun(
        f'--workdir={workdir} is the run to extend (--from): name a new '
        'folder for the extended run')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise lineage.WorkdirHoldsAnotherRun(f'--workdir={workdir}: not a folder')
  if jax.process_count() > 1:
    raise errors.ConfigError('extend runs in one process only')
  started = time.perf_counter()
  section = config.extend
  new = conditions.read(image_dir, class_names_lib.read(parent_dir),
                        preparation.Recipe.from_config(config),
                        section.validation_fraction, section.seed)
  print(f'New conditions from {image_dir}: ' + ', '.join(
      f'{name} ({_count(new.train, i)} training, '
      f'{_count(new.validation, i)} validation photos)'
      for i, name in enumerate(new.names)) +
        f'; validation carved by extend.validation_fraction='
        f'{section.validation_fraction:g} (at least one) and extend.seed='
        f'{section.seed}.', flush=True)
  parent = restore.load(config, parent_dir, checkpoint, weights)
  old = old_photos.find(
      config, parent.class_names,
      section.replay_per_class if section.method == 'head' else 0,
      section.seed)
  print(f'Old classes: {old.note}.', flush=True)
  config = lineage.config_of(config, parent_dir, parent, new, len(old.replay))
  os.makedirs(workdir, exist_ok=True)
  with lock.hold(workdir):
    if lineage.holds_this(workdir, config):
      if _complete(config, workdir):
        print(f'{workdir} already holds this extension: nothing to do.')
        return {}
      for folder in (checkpoint_folder.checkpoint_dir(workdir),
                     os.path.join(workdir, saved_calibration.CALIBRATION_DIR)):
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted attempt's
    result = _extend(config, parent, new, old, workdir)
  result['seconds'] = time.perf_counter() - started
  print(f'Extended {parent_dir} (checkpoint {parent.step}, {parent.weights} '
        f'weights) by {section.method} into {workdir} in '
        f"{result['seconds']:.0f} s: validation top1 "
        f"{result['validation']['top1']:.4f}; old classes' balanced accuracy "
        f"{_f(result['old_balanced_accuracy'])} (the parent's "
        f"{_f(result['parent_old_balanced_accuracy'])}); new classes' recall "
        f"{result['new_recall']:.4f} on {len(new.validation)} photos.",
        flush=True)
  return result


def _count(examples, label: int) -> int:
  return sum(e['label'] == label for e in examples)


def _f(value) -> str:
  return '-' if value is None else f'{value:.4f}'


def _complete(config, workdir: str) -> bool:
  """Whether the extension in `workdir` was finished: its checkpoint and
  calibration read back as scoring reads them."""
  try:
    restore.load(config, workdir)
    return True
  except errors.UserError:
    return False


def _extend(config, parent, new, old, workdir: str) -> dict:
  section = config.extend
  num_old = len(parent.class_names)
  class_names = parent.class_names + new.names
  shifted = lambda examples: [{**e, 'label': e['label'] + num_old}
                              for e in examples]
  views = section.views if section.method == 'head' else 1
  features_of = _feature_function(config, parent)
  new_features, new_labels = features_of(shifted(new.train), views,
                                         'new training photos')
  means = rows.class_means(new_features[0], new_labels - num_old,
                           len(new.names))
  head = jax.device_get(parent.state.params[models.HEAD])
  kernel, bias = rows.extended(head['kernel'], head['bias'], means,
                               parent.feature_statistics['means'])
  val_parts = [features_of(source, 1, name) for source, name in (
      (old.validation, 'old validation photos'),
      (shifted(new.validation), 'new validation photos')) if source]
  val_features = np.concatenate([f[0] for f, _ in val_parts])
  val_labels = np.concatenate([y for _, y in val_parts])
  epoch = None
  if section.method == 'head':
    kernel, bias, epoch = _fit_head(config, features_of, old, new_features,
                                    new_labels, val_features, val_labels,
                                    class_names, (kernel, bias), num_old)
  validation = metrics_lib.classification_metrics(
      val_features @ kernel + bias, val_labels, class_names)
  run_config.write(config, workdir)
  class_names_lib.write(workdir, class_names)
  environment.record(workdir, parent.step)
  _save_checkpoint(config, workdir, parent, kernel, bias, validation)
  extended = restore.restore(config, workdir, str(parent.step))
  statistics = {'means': np.concatenate([parent.feature_statistics['means'],
                                         means]),
                'precision': parent.feature_statistics['precision'],
                # The parent's photos still say what skin in view looks like.
                **{key: parent.feature_statistics[key]
                   for key in quality.STATISTICS_KEYS
                   if key in parent.feature_statistics}}
  outputs = _calibration_outputs(config, extended, old, shifted(
      new.validation), val_features, val_labels)
  calibration, statistics = calibrate.fit_outputs(
      config, extended, statistics, outputs, saved_calibration.wanted(
          config, extended.step, extended.weights,
          restore.params_digest(extended.state.params)))
  calibration = dataclasses.replace(calibration, fitted_on={
      **calibration.fitted_on,
      'old_class_photos': int(np.sum(outputs['label'] < num_old)),
      'new_class_photos': int(np.sum(outputs['label'] >= num_old))})
  calibrate.save(workdir, extended, calibration, statistics)
  old_rows = val_labels < num_old
  before = (metrics_lib.classification_metrics(
      val_features[old_rows] @ head['kernel'] + head['bias'],
      val_labels[old_rows], parent.class_names) if old_rows.any() else None)
  recall = {n: validation['per_class'][n] for n in class_names}
  return {
      'validation': validation, 'epoch': epoch,
      'new_recall': float(np.mean([recall[n]['recall'] for n in new.names])),
      'old_balanced_accuracy': float(np.mean(
          [recall[n]['recall'] for n in parent.class_names
           if recall[n]['support']])) if old_rows.any() else None,
      'parent_old_balanced_accuracy': before and before['balanced_accuracy'],
  }


def _feature_function(config, parent):
  """features_of(source, views, what) -> (features (views, photos, dim),
  labels): the parent's penultimate features (the head's input) of
  `source`'s centre crops, then of augmented views drawn from extend.seed
  as the frozen-feature path draws them (data.pipeline.view_dataset)."""
  step = forward.jit_eval_step(parent.mesh, model=parent.model,
                               features=True)
  seeded = config.copy_and_resolve_references()
  seeded.seed = config.extend.seed

  def features_of(source, views: int, what: str) -> tuple:
    results = [forward.predict(
        step, parent.state, pipeline.view_dataset(source, seeded, view),
        parent.mesh, desc=f'features of {what} (view {view + 1} of {views})',
        total=len(source)) for view in range(views)]
    return (np.stack([r['features'] for r in results]).astype(np.float32),
            results[0]['label'].astype(np.int32))

  return features_of


def _fit_head(config, features_of, old, new_features, new_labels,
              val_features, val_labels, class_names, start, num_old) -> tuple:
  """(kernel, bias, epoch kept) of the head fitted from `start` on the new
  photos' views beside the replayed ones, class-balanced; the old rows
  frozen unless extend.train_old_rows and some old photos are replayed."""
  section = config.extend
  features, labels = new_features, new_labels
  if old.replay:
    replay, replay_labels = features_of(old.replay, section.views,
                                        'replayed photos')
    features = np.concatenate([replay, new_features], axis=1)
    labels = np.concatenate([replay_labels, new_labels])
  elif section.train_old_rows:
    print('No old photos to replay: only the new rows are fitted (old rows '
          'trained on new photos alone would only learn to lose).',
          flush=True)
  trainable = np.arange(len(class_names)) >= num_old
  if section.train_old_rows and old.replay:
    trainable[:] = True
  fitted = head_fit.fit(
      features, labels, val_features, val_labels, class_names,
      head_fit.Settings(epochs=section.epochs, batch_size=section.batch_size,
                        learning_rate=section.learning_rate,
                        weight_decay=section.weight_decay,
                        label_smoothing=config.label_smoothing,
                        seed=section.seed, metric=config.best_metric),
      loss.balanced_class_weights(labels, len(class_names)), start=start,
      trainable=trainable)
  print(f'Head fitted on {features.shape[1]} photos x {features.shape[0]} '
        f'views: epoch {fitted.epoch} of {section.epochs} kept (0: the start)'
        f', validation {config.best_metric} '
        f'{fitted.validation[config.best_metric]:.4f}.', flush=True)
  return fitted.kernel, fitted.bias, fitted.epoch


def _save_checkpoint(config, workdir: str, parent, kernel, bias,
                     validation: dict) -> None:
  """The parent's weights with the extended head, as a checkpoint of the
  parent's step in the layout training writes (a fresh optimiser state),
  ranked by its validation metrics."""
  params = dict(parent.state.params)
  params[models.HEAD] = {'kernel': jnp.asarray(kernel),
                         'bias': jnp.asarray(bias)}
  tx, _ = optimizer.from_config(config)
  state = jax.device_put(state_lib.TrainState(
      step=jnp.asarray(parent.step, jnp.int32), params=params,
      batch_stats=parent.state.batch_stats, opt_state=tx.init(params),
      rng=jax.random.PRNGKey(config.extend.seed)),
                         sharding.replicated(parent.mesh))
  manager = checkpoint_folder.create_manager(workdir, config.keep_checkpoints,
                                             config.best_metric)
  try:
    checkpoints.save(manager, state, metrics={
        k: validation[k] for k in metrics_lib.CHECKPOINT_METRICS
        if validation[k] is not None})
    checkpoints.wait_until_finished(manager)
  finally:
    manager.close()


def _calibration_outputs(config, extended, old, new_validation, features,
                         labels) -> dict:
  """The extended model's outputs on the validation photos: from their
  features without test-time augmentation (the head is all that changed),
  else computed with it."""
  if config.evaluation.tta == 'none':
    head = jax.device_get(extended.state.params[models.HEAD])
    return {'logits': features @ head['kernel'] + head['bias'],
            'features': features, 'label': labels}
  parts = [forward.predict(
      extended.eval_step, extended.state, pipeline.eval_dataset(
          source, config, 0, 1), extended.mesh,
      desc='calibration: outputs', total=len(source))
           for source in (old.validation, new_validation) if source]
  return {k: np.concatenate([p[k] for p in parts])
          for k in ('logits', 'features', 'label')}
