"""Recipes the dataset configs share: whole settings, not defaults.

A dataset config starts from one and sets what depends on the dataset
(image sizes, steps, warmup, evaluation cadence): imagenet_finetune for
an accelerator's EfficientNet-Lite, cpu_finetune for configs/<dataset>.py:cpu,
whose figures are in experiments/time_to_quality/README.md; frozen_vit for
configs/<dataset>.py:vit_small_cpu and vit_finetune for :vit_small and
:vit_base, whose figures are in experiments/backbones/README.md.
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


def frozen_vit(config, model_name='vit_small_patch14_dinov2'):
  """A DINOv2 ViT kept frozen: its features of every training photo (the
  centre crop and augmented views) computed once at the scoring size and
  cached, the head fitted on them (config.frozen_features), nothing else
  trained. One forward pass per photo and view is what a CPU can afford
  of a ViT. The weights come from the user's file:
  --config.model.init_from=/path/to/dinov2_vits14.safetensors."""
  config.model.name = model_name
  config.frozen_features.enabled = True
  config.num_train_steps = 0
  config.batch_size = 32
  config.eval_batch_size = 64
  config.frozen_features.epochs = 100
  config.frozen_features.learning_rate = 1e-3
  config.frozen_features.weight_decay = 1e-4
  # Milder crops than training from scratch: a view must keep the lesion.
  config.augment.crop_scale = (0.5, 1.0)
  # The unfamiliar flag's statistics come from the cached features: all of
  # the training photos cost nothing more.
  config.evaluation.unfamiliar_fit_examples = 100_000
  return config


def vit_finetune(config, model_name):
  """An accelerator's full fine-tune of a DINOv2 ViT at 224 px: the head
  fitted first on frozen features (frozen_vit's start), then every layer
  trained with layer-wise learning-rate decay 0.75, AdamW, drop path 0.1:
  the usual recipe for fine-tuning DINOv2 (and BEiT before it)."""
  frozen_vit(config, model_name)
  config.model.drop_path_rate = 0.1
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 2e-4
  config.optimizer.weight_decay = 0.05
  config.optimizer.layer_decay = 0.75
  config.optimizer.grad_clip_norm = 1.0
  config.batch_size = 128
  config.eval_batch_size = 256
  config.image_size = 224
  return config
