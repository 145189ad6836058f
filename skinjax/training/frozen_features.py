"""The frozen-feature start of a run (config.frozen_features.enabled).

The backbone's features of every training photo (views of it:
frozen_features.views) and every validation photo are computed once and
cached (training.feature_cache); the classifier head is fitted on them
(training.head_fit) and put into the run's state, which the loop saves as
checkpoint 0, validated like any other. What follows is the ordinary loop:
num_train_steps = 0 ends there (the whole model is in the checkpoint, so
evaluate, predict, serve, export and the calibration take it as they take
any run), more steps fine-tune from it (frozen_stages, the backbone's
learning-rate factor).

A CPU cannot afford a ViT's backward pass over thousands of photos for many
epochs; one forward pass per photo and view it can.
"""

import dataclasses
import os
import time

import jax
import numpy as np

from skinjax import errors
from skinjax import models
from skinjax.data import pipeline
from skinjax.inference import forward
from skinjax.parallel import sharding
from skinjax.training import feature_cache
from skinjax.training import head_fit
from skinjax.training import loss
from skinjax.training import state as state_lib

CACHE_FOLDER = 'feature_cache'  # in WORKDIR when frozen_features.cache_dir=''


@dataclasses.dataclass(frozen=True)
class Result:
  state: state_lib.TrainState  # with the fitted head, at step 0
  validation: dict  # metrics_lib.classification_metrics of that head
  record: dict  # what to log at step 0
  cached: dict  # {split: (features of view 0, labels)}


def cache_dir(config, workdir: str) -> str:
  return config.frozen_features.cache_dir or os.path.join(workdir,
                                                          CACHE_FOLDER)


def fit_head(config, workdir: str, builder, class_names, model, state, tx,
             mesh) -> Result:
  """The state with its head fitted on the frozen backbone's features."""
  if jax.process_count() > 1:
    raise errors.ConfigError(
        'config.frozen_features.enabled: runs in one process only (its '
        f'{jax.process_count()} processes would each compute every photo)')
  eval_step = forward.jit_eval_step(mesh, model=model, features=True)
  backbone = feature_cache.backbone_digest(state.params)
  held_out = config.dataset.held_out_classes
  started = time.perf_counter()
  extracted = {}
  for split, views in ((config.dataset.train_split,
                        config.frozen_features.views),
                       (config.dataset.eval_split, 1)):
    source = pipeline.data_source(builder, split, held_out)
    key = feature_cache.cache_key(config, builder, split, views, backbone)
    extracted[split] = feature_cache.extract(
        config, key, cache_dir(config, workdir), source, eval_step, state,
        mesh)
  feature_seconds = time.perf_counter() - started
  features, labels = extracted[config.dataset.train_split]
  val_features, val_labels = extracted[config.dataset.eval_split]
  weights = None
  if config.class_balance != 'none':  # sampling's expectation, exactly
    weights = loss.balanced_class_weights(labels, len(class_names))
  started = time.perf_counter()
  fitted = head_fit.fit(features, labels, val_features[0], val_labels,
                        class_names, head_fit.Settings.from_config(config),
                        weights)
  head_seconds = time.perf_counter() - started
  params = dict(state.params)
  params[models.HEAD] = {'kernel': fitted.kernel, 'bias': fitted.bias}
  params = jax.device_put(params, sharding.replicated(mesh))
  state = state_lib.with_variables(
      state, {'params': params, 'batch_stats': state.batch_stats}, tx)
  photos = features.shape[0] * features.shape[1] + len(val_labels)
  print(f'Head fitted on {features.shape[1]} photos x {features.shape[0]} '
        f'views ({features.shape[2]} features; extracted in '
        f'{feature_seconds:.0f} s, fitted in {head_seconds:.1f} s): epoch '
        f'{fitted.epoch} of {len(fitted.history)}, validation top1 '
        f"{fitted.validation['top1']:.4f}, balanced accuracy "
        f"{fitted.validation['balanced_accuracy']:.4f}.", flush=True)
  record = {f'val/{k}': fitted.validation[k]
            for k in ('top1', 'top3', 'balanced_accuracy', 'macro_f1', 'nll')}
  record.update({'perf/feature_seconds': feature_seconds,
                 'perf/head_fit_seconds': head_seconds,
                 'perf/features_per_second': photos / max(feature_seconds,
                                                          1e-9),
                 'frozen_features/epoch': fitted.epoch})
  return Result(state=state, validation=fitted.validation, record=record,
                cached={split: (f[0], y) for split, (f, y)
                        in extracted.items()})


def cached_outputs(result: Result, params):
  """A calibrate.calibrated `outputs` function: the eval step's outputs of
  a cached split (logits from `params`' head on the cached features, as the
  model computes them), None for a split not cached."""
  head = jax.device_get(params[models.HEAD])

  def outputs(split: str, limit=None):
    if split not in result.cached:
      return None
    features, labels = result.cached[split]
    if limit is not None and len(labels) > limit:
      keep = np.linspace(0, len(labels) - 1, limit).round().astype(int)
      features, labels = features[keep], labels[keep]
    return {'logits': features @ head['kernel'] + head['bias'],
            'features': features, 'label': labels}

  return outputs
