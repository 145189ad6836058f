"""Command-line config handling shared by the entry points.

Parses `--config FILE --config.KEY=VALUE ...` (ml_collections config_flags)
and turns every way a config can be wrong into a one-line error that names
the key, before any data or compile work starts.
"""

import difflib
import json
import re
import runpy
import sys

from absl import flags
from absl import logging
import jax
import ml_collections

from skinjax import data as data_lib
from skinjax import models
from skinjax.models import pretrained

_CHOICES = {
    'optimizer.name': ('sgd', 'adamw'),
    'model.dtype': ('float32', 'bfloat16'),
    'wandb.mode': ('online', 'offline', 'disabled'),
    'class_balance': ('none', 'loss_weights', 'sampling'),
    'evaluation.tta': ('none', 'flips', 'dihedral'),
}
BEST_METRICS = ('top1', 'top3', 'balanced_accuracy', 'macro_f1')


class ConfigError(ValueError):
  """A config value that cannot work; the message names the key."""


def parse_flags(argv):
  """absl flags parser for `app.run` that exits with one line on a bad flag.

  Also quiets the INFO logs of orbax and tfds unless --verbosity is given.
  """
  try:
    remaining = flags.FLAGS(argv)
    config = flags.FLAGS['config'].value if 'config' in flags.FLAGS else None
    if config is not None:
      config.keys()  # config_flags defers a file's load error to first use.
  except Exception as e:  # config_flags raises many types; all mean bad input.
    sys.exit(f'error: {_explain(argv, e)}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  return remaining


def _explain(argv, error):
  """One line saying which flag or config key is wrong."""
  path = _config_path(argv)
  if path is None:
    return _one_line(error)
  try:
    file, *arg = path.split(':', 1)
    config = runpy.run_path(file)['get_config'](*arg)
  except Exception as e:  # The file itself is broken: name it.
    return f'{path}: {_one_line(e)}'
  for arg in argv[1:]:
    if arg.startswith('--config.'):
      problem = _unknown_key(config, arg[len('--config.'):].split('=', 1)[0])
      if problem:
        return f'{arg}: {problem}'
  return _one_line(error)


def _config_path(argv):
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _one_line(error) -> str:
  text = str(error).replace('\\n', ' ')
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
    text = text[1:-1]
  # ml_collections lists every sibling key of a locked config: drop that.
  text = re.sub(r' Other fields present: .*?(?= Did you mean|$)', '', text,
                flags=re.S)
  return f'{type(error).__name__}: ' + ' '.join(text.split())


def _unknown_key(config, dotted_key):
  """Message if `dotted_key` is not a key of `config`, else None."""
  node, parts = config, dotted_key.split('.')
  for i, part in enumerate(parts):
    keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
    if part not in keys:
      close = difflib.get_close_matches(part, keys, n=1)
      guess = '.'.join(parts[:i] + close + parts[i + 1:])
      hint = f" (did you mean '{guess}'?)" if close else ''
      return f"unknown config key '{dotted_key}'{hint}"
    node = node[part]
  return None


def validate(config):
  """Checks values that no type check catches; raises ConfigError."""
  for key, choices in _CHOICES.items():
    value = _get(config, key)
    if value not in choices:
      raise ConfigError(f'config.{key}={value!r}: choose one of {choices}')
  dataset, _, variant = config.dataset.name.partition('/')
  if dataset not in data_lib.DATASETS:
    raise ConfigError(f'config.dataset.name={config.dataset.name!r}: unknown '
                      f'dataset; choose one of {sorted(data_lib.DATASETS)}')
  variants = [c.name for c in data_lib.DATASETS[dataset].BUILDER_CONFIGS]
  if variants and variant and variant not in variants:
    raise ConfigError(f'config.dataset.name={config.dataset.name!r}: unknown '
                      f'variant; choose one of {variants}')
  if config.model.name not in models.MODELS:
    raise ConfigError(f'config.model.name={config.model.name!r}: unknown model;'
                      f' choose one of {sorted(models.MODELS)}')
  if config.model.init_from == 'imagenet' and not pretrained.available(
      config.model.name):
    raise ConfigError(f'config.model.init_from=imagenet: no ImageNet weights '
                      f'for {config.model.name}; there are for '
                      f'{pretrained.NAMES}')
  if config.optimizer.backbone_learning_rate_factor < 0:
    raise ConfigError('config.optimizer.backbone_learning_rate_factor: must '
                      'be >= 0')
  if config.best_metric not in BEST_METRICS:
    raise ConfigError(f'config.best_metric={config.best_metric!r}: choose one '
                      f'of {BEST_METRICS}')
  for key in ('image_size', 'batch_size', 'eval_batch_size', 'num_train_steps',
              'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
              'keep_checkpoints', 'model.width', 'grad_accum_steps',
              'evaluation.calibration_bins'):
    if _get(config, key) < 1:
      raise ConfigError(f'config.{key}={_get(config, key)}: must be >= 1')
  for key in ('augment.crop_scale', 'augment.crop_ratio'):
    low, high = _get(config, key)
    if not 0 < low <= high:
      raise ConfigError(f'config.{key}={(low, high)}: need 0 < low <= high')
  if not 0 < config.augment.eval_crop_fraction <= 1:
    raise ConfigError('config.augment.eval_crop_fraction: must be in (0, 1]')
  for key in ('dataset.validation_fraction', 'dataset.test_fraction'):
    if not 0 <= _get(config, key) < 1:
      raise ConfigError(f'config.{key}: must be in [0, 1)')
  if not 0 <= config.label_smoothing < 1:
    raise ConfigError('config.label_smoothing: must be in [0, 1)')
  if not 0 < config.evaluation.max_risk < 1:
    raise ConfigError('config.evaluation.max_risk: must be in (0, 1)')
  if not 0 <= config.ema_decay < 1:
    raise ConfigError('config.ema_decay: must be in [0, 1) (0 disables)')


def validate_for_devices(config, device_count, process_count):
  """Batch sizes must split evenly over devices and processes (and each
  device's share of a training batch over the micro-batches)."""
  for key in ('batch_size', 'eval_batch_size'):
    size = _get(config, key)
    if size % device_count or size % process_count:
      raise ConfigError(
          f'config.{key}={size}: must be divisible by the {device_count} '
          f'devices and {process_count} processes')
  if config.batch_size % (device_count * config.grad_accum_steps):
    raise ConfigError(
        f'config.batch_size={config.batch_size}: must be divisible by the '
        f'{device_count} devices x config.grad_accum_steps='
        f'{config.grad_accum_steps}')


def exit_if_invalid(config) -> None:
  """Exits with one line naming the key if the config cannot run here."""
  try:
    validate(config)
    validate_for_devices(config, jax.device_count(), jax.process_count())
  except ConfigError as e:
    sys.exit(f'error: {e}')


def _get(config, dotted_key):
  for part in dotted_key.split('.'):
    config = config[part]
  return config


def to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
