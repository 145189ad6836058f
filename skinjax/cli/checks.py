"""Value checks that no type check catches, each a one-line ConfigError.

Allowed names come from the registries that own them (datasets, models and
their dtypes, optimisers, class-balance modes, test-time augmentations, W&B
modes, checkpoint metrics), so a name added there is accepted here at once.
They run before any data or compile work.
"""

import os

import jax

from skinjax import data
from skinjax import errors
from skinjax import models
from skinjax.data.builders import prepared_photos
from skinjax.data.prepare import decode
from skinjax.evaluation import metrics
from skinjax.inference import forward
from skinjax.evaluation import unfamiliar
from skinjax.extending import rows
from skinjax.models import pretrained
from skinjax.models import weight_files
from skinjax.run_folder import tracking
from skinjax.training import loss
from skinjax.training import optimizer


# The one error class for a config value that cannot work (one line naming
# the key), here and wherever else a value is refused.
ConfigError = errors.ConfigError


def _choices():
  return {
      'model.name': tuple(models.MODELS),
      'model.dtype': tuple(models.DTYPES),
      'model.layer_forms': models.LAYER_FORMS,
      'optimizer.name': tuple(optimizer.OPTIMIZERS),
      'class_balance': loss.CLASS_BALANCE_MODES,
      'evaluation.tta': tuple(forward.TTA_MODES),
      'evaluation.unfamiliar_score': unfamiliar.SCORES,
      'wandb.mode': tracking.WANDB_MODES,
      'best_metric': metrics.CHECKPOINT_METRICS,
      'extend.method': rows.METHODS,
  }


def validate(config) -> None:
  """Raises ConfigError naming the first key whose value cannot work."""
  for key, choices in _choices().items():
    if get(config, key) not in choices:
      raise ConfigError(f'config.{key}={get(config, key)!r}: choose one of '
                        f'{sorted(choices)}')
  _validate_dataset_name(config.dataset.name)
  if config.model.init_from == 'imagenet' and not pretrained.available(
      config.model.name):
    raise ConfigError(f'config.model.init_from=imagenet: no ImageNet weights '
                      f'for {config.model.name}; there are for '
                      f'{pretrained.NAMES}')
  if config.optimizer.backbone_learning_rate_factor < 0:
    raise ConfigError('config.optimizer.backbone_learning_rate_factor: must '
                      'be >= 0')
  for key in ('image_size', 'batch_size', 'eval_batch_size',
              'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
              'keep_checkpoints', 'model.width', 'grad_accum_steps',
              'evaluation.calibration_bins',
              'evaluation.unfamiliar_fit_examples',
              'evaluation.bootstrap_resamples',
              'evaluation.quality.fit_examples', 'serve.max_batch_size',
              'serve.max_photos_per_request', 'serve.max_request_bytes',
              'serve.max_concurrent_requests', 'serve.decode_threads',
              'serve.max_body_bytes_in_flight', 'serve.max_request_pixels',
              'serve.max_connections', 'serve.body_min_bytes_per_s',
              'serve.token_failures',
              'serve.top_k', 'frozen_features.views', 'frozen_features.epochs',
              'frozen_features.batch_size', 'frozen_features.chunk_size',
              'extend.views', 'extend.epochs', 'extend.batch_size'):
    if get(config, key) < 1:
      raise ConfigError(f'config.{key}={get(config, key)}: must be >= 1')
  for key in ('optimizer.warmup_steps', 'input.num_workers', 'eval_image_size',
              'augment.mixup_alpha', 'augment.cutmix_alpha',
              'model.frozen_until_step',
              'input.num_threads', 'input.device_prefetch',
              'dataset.split_seed', 'serve.max_wait_ms',
              'serve.device_failure_exit_s',
              'frozen_features.weight_decay', 'extend.replay_per_class',
              'extend.weight_decay'):
    if get(config, key) < 0:
      raise ConfigError(f'config.{key}={get(config, key)}: must be >= 0')
  for key in ('serve.request_deadline_s', 'serve.header_timeout_s',
              'serve.keep_alive_s', 'serve.body_rate_window_s',
              'serve.token_lockout_s',
              'serve.device_stall_s'):
    if not get(config, key) > 0:
      raise ConfigError(f'config.{key}={get(config, key)}: must be > 0')
  if not 0 < config.optimizer.layer_decay <= 1:
    raise ConfigError(f'config.optimizer.layer_decay='
                      f'{config.optimizer.layer_decay}: must be in (0, 1]')
  if (config.optimizer.layer_decay < 1 and
      config.model.name not in models.LAYER_OF):
    raise ConfigError(f'config.optimizer.layer_decay: defined for '
                      f'{sorted(models.LAYER_OF)}, not {config.model.name}')
  if config.frozen_features.enabled and not config.model.init_from:
    raise ConfigError('config.frozen_features.enabled: needs pretrained '
                      'weights in config.model.init_from (a weight file, '
                      "'imagenet' or a run)")
  if config.num_train_steps < (0 if config.frozen_features.enabled else 1):
    raise ConfigError(f'config.num_train_steps={config.num_train_steps}: '
                      'must be >= 1 (>= 0 with frozen_features.enabled)')
  for key in ('optimizer.learning_rate', 'frozen_features.learning_rate',
              'extend.learning_rate'):
    if not get(config, key) > 0:
      raise ConfigError(f'config.{key}={get(config, key)}: must be > 0')
  for key in ('augment.crop_scale', 'augment.crop_ratio'):
    low, high = get(config, key)
    if not 0 < low <= high:
      raise ConfigError(f'config.{key}={(low, high)}: need 0 < low <= high')
  if config.augment.crop_scale[1] > 1:
    raise ConfigError(f'config.augment.crop_scale={config.augment.crop_scale}'
                      ': fractions of the image area, at most 1')
  for key in ('model.dropout_rate', 'model.drop_path_rate'):
    if not 0 <= get(config, key) < 1:
      raise ConfigError(f'config.{key}={get(config, key)}: must be in [0, 1)')
  if not 0 < config.augment.eval_crop_fraction <= 1:
    raise ConfigError('config.augment.eval_crop_fraction: must be in (0, 1]')
  for key in ('dataset.validation_fraction', 'dataset.test_fraction',
              'extend.validation_fraction'):
    if not 0 <= get(config, key) < 1:
      raise ConfigError(f'config.{key}: must be in [0, 1)')
  held_out = config.dataset.validation_fraction + config.dataset.test_fraction
  if held_out >= 1:
    raise ConfigError(
        f'config.dataset.validation_fraction + test_fraction = {held_out:g}: '
        'must leave training data (< 1)')
  if not 1 <= config.dataset.max_image_pixels <= decode.PIL_PIXEL_CEILING:
    raise ConfigError(
        f'config.dataset.max_image_pixels={config.dataset.max_image_pixels}: '
        f'must be in [1, {decode.PIL_PIXEL_CEILING}] (PIL refuses larger '
        'images as decompression bombs)')
  if (_prepares_photos(config.dataset.name) and
      config.image_size > config.dataset.max_short_side):
    raise ConfigError(
        f'config.image_size={config.image_size}: larger than the photos are '
        f'stored (config.dataset.max_short_side='
        f'{config.dataset.max_short_side}), so every image would be '
        'upsampled; raise max_short_side')
  if not 0 <= config.label_smoothing < 1:
    raise ConfigError('config.label_smoothing: must be in [0, 1)')
  if not 0 < config.evaluation.max_risk < 1:
    raise ConfigError('config.evaluation.max_risk: must be in (0, 1)')
  if not 0 < config.evaluation.unfamiliar_tpr < 1:
    raise ConfigError('config.evaluation.unfamiliar_tpr: must be in (0, 1)')
  quality = config.evaluation.quality
  for key in ('blur_refuse_share', 'skin_refuse_share', 'dark_refuse_share',
              'max_dark_share', 'max_bright_share'):
    if not 0 <= quality[key] < 1:
      raise ConfigError(f'config.evaluation.quality.{key}={quality[key]}: '
                        'must be in [0, 1)')
  if not 0 < quality.dark_margin <= 1:
    raise ConfigError(f'config.evaluation.quality.dark_margin='
                      f'{quality.dark_margin}: must be in (0, 1]')
  if not 0 <= quality.dark_level <= 100:
    raise ConfigError(f'config.evaluation.quality.dark_level='
                      f'{quality.dark_level}: a CIELAB lightness, 0 to 100')
  if not 0 <= quality.bright_level <= 255:
    raise ConfigError(f'config.evaluation.quality.bright_level='
                      f'{quality.bright_level}: a channel value, 0 to 255')
  stages = models.STAGES[config.model.name]
  if not 0 <= config.model.frozen_stages <= stages:
    raise ConfigError(f'config.model.frozen_stages={config.model.frozen_stages}'
                      f': {config.model.name} has {stages} stages (the stem '
                      f'counted); choose 0 to {stages}')
  _validate_progressive_resizing(config)
  _validate_patch_multiples(config)
  if (weight_files.is_weight_file(config.model.init_from) and
      not os.path.isfile(os.path.expanduser(config.model.init_from))):
    raise ConfigError(f'config.model.init_from={config.model.init_from}: no '
                      'such weight file')
  if not 0 <= config.ema_decay < 1:
    raise ConfigError('config.ema_decay: must be in [0, 1) (0 disables)')


def _validate_progressive_resizing(config) -> None:
  """((size, until_step), ...): sizes >= 1 that fit the stored photos, steps
  rising."""
  last_step = 0
  for entry in config.progressive_resizing:
    try:
      size, until_step = (int(v) for v in entry)
    except (TypeError, ValueError):
      size = until_step = None
    if size is None or size < 1 or until_step <= last_step:
      raise ConfigError(
          f'config.progressive_resizing={config.progressive_resizing!r}: '
          'need ((size, until_step), ...) with sizes >= 1 and rising steps '
          '>= 1, e.g. ((80, 300), (96, 600))')
    if (_prepares_photos(config.dataset.name) and
        size > config.dataset.max_short_side):
      raise ConfigError(
          f'config.progressive_resizing: size {size} is larger than the '
          'photos are stored (config.dataset.max_short_side='
          f'{config.dataset.max_short_side})')
    last_step = until_step


def _validate_patch_multiples(config) -> None:
  """A ViT reads whole patches: every size it sees is a multiple of its
  patch size (224 = 16 x 14), or border pixels would be dropped."""
  patch = models.PATCH_SIZES.get(config.model.name)
  if not patch:
    return
  sizes = [('image_size', config.image_size),
           ('eval_image_size', config.eval_image_size)] + [
               ('progressive_resizing', int(size))
               for size, _ in config.progressive_resizing]
  for key, size in sizes:
    if size % patch:
      raise ConfigError(
          f'config.{key}: {size} px is not a multiple of '
          f'{config.model.name}\'s {patch}-pixel patches; try '
          f'{max(patch, round(size / patch) * patch)}')


def _prepares_photos(name: str) -> bool:
  return issubclass(data.DATASETS[name.partition('/')[0]],
                    prepared_photos.PreparedPhotosBuilder)


def _validate_dataset_name(name: str) -> None:
  data.check_name(name)
  dataset, _, variant = name.partition('/')
  if dataset not in data.DATASETS:
    raise ConfigError(f'config.dataset.name={name!r}: unknown dataset; choose '
                      f'one of {sorted(data.DATASETS)}')
  variants = [c.name for c in data.DATASETS[dataset].BUILDER_CONFIGS]
  if variants and variant and variant not in variants:
    raise ConfigError(f'config.dataset.name={name!r}: unknown variant; '
                      f'choose one of {variants}')


def validate_for_devices(config, device_count: int, process_count: int,
                         keys=('batch_size', 'eval_batch_size')) -> None:
  """The batch sizes in `keys` must split evenly over devices and processes
  (and, when training, each device's share over the micro-batches)."""
  for key in keys:
    size = get(config, key)
    if size % device_count or size % process_count:
      raise ConfigError(
          f'config.{key}={size}: must be divisible by the {device_count} '
          f'devices and {process_count} processes')
  if 'batch_size' in keys and config.batch_size % (
      device_count * config.grad_accum_steps):
    raise ConfigError(
        f'config.batch_size={config.batch_size}: must be divisible by the '
        f'{device_count} devices x config.grad_accum_steps='
        f'{config.grad_accum_steps}')


def validate_here(config, batch_keys=('batch_size', 'eval_batch_size')) -> None:
  """validate, then validate_for_devices on this machine's devices and
  processes (for `batch_keys`: scoring needs only the evaluation batch)."""
  validate(config)
  validate_for_devices(config, jax.device_count(), jax.process_count(),
                       batch_keys)


def validate_key_names(config, keys, flag: str) -> None:
  """Every dotted key in `keys` (a flag's value) names a key of `config`."""
  for key in keys:
    try:
      get(config, key)
    except (KeyError, AttributeError):
      raise ConfigError(f'{flag}={key}: config has no key {key!r}') from None


def get(config, dotted_key: str):
  """config['a']['b'] for 'a.b'."""
  for part in dotted_key.split('.'):
    config = config[part]
  return config
