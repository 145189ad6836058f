"""Recipes the dataset configs share: whole settings, not defaults.

A dataset config starts from one and sets what depends on the dataset
(image sizes, steps, warmup, evaluation cadence): imagenet_finetune for
an accelerator's EfficientNet-Lite, cpu_finetune for configs/<dataset>.py:cpu,
whose figures are in experiments/time_to_quality/README.md.
"""

from skinjax import errors


def check_variant(variant: str, variants) -> None:
  """A config file's argument (`configs/X.py:VARIANT`) must be one of its
  `variants`: one line naming them otherwise, before any work."""
  if variant not in variants:
    raise errors.ConfigError(f'variant {variant!r}: choose one of '
                             f'{", ".join(variants)}')


def imagenet_finetune(config, model_name):
  """Fine-tunes an EfficientNet-Lite from ImageNet with the dataset
  config's batch (128 in ham10000.py and dermnet.py): AdamW with weight
  decay, dropout before the classifier and stochastic depth."""
  config.model.name = model_name
  config.model.init_from = 'imagenet'
  config.model.dropout_rate = 0.2
  config.model.drop_path_rate = 0.2
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 0.05
  return config


def cpu_finetune(config):
  """Fine-tunes EfficientNet-Lite0 from ImageNet within a small CPU box's
  hour: small batches, AdamW, class-balanced sampling, and no backward
  pass through the stem and the first two stages, which run at the
  largest maps where a CPU spends most of a step while ImageNet's
  low-level filters serve skin as they are."""
  config.model.name = 'efficientnet_lite0'
  config.model.init_from = 'imagenet'
  config.model.dropout_rate = 0.2
  config.model.drop_path_rate = 0.1
  config.model.frozen_stages = 3
  # Every class drawn equally often, not weighed in the loss (measured
  # against loss weights: experiments/time_to_quality/README.md).
  config.class_balance = 'sampling'
  config.batch_size = 32
  config.eval_batch_size = 128
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 1.5e-3
  config.optimizer.weight_decay = 0.05
  config.evaluation.unfamiliar_fit_examples = 1500
  return config
