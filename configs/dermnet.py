"""DermNet (23 categories), 224 px: EfficientNet-Lite0 fine-tuned from
ImageNet, or another variant (`configs/dermnet.py:VARIANT`, one of
VARIANTS): ':efficientnet_lite1' or ':efficientnet_lite2' the same with a
larger Lite, ':resnet50' a ResNet-50 trained from scratch, ':cpu' the recipe
for a small CPU box.

Point dataset.manual_dir at the Kaggle DermNet zip or its extracted folder:

  python -m skinjax.train --config configs/dermnet.py --workdir runs/dermnet \
      --config.dataset.manual_dir=~/Downloads/dermnet.zip
  python -m skinjax.train --config configs/dermnet.py:resnet50 ...

Use --config.dataset.name=dermnet/20 for the 20-class variant.

With ':cpu': Lite0 from ImageNet trained at 128 px with the stem and first
two stages frozen, every group drawn equally often, scored at 160 px, 2,000
steps of 32 (about 18 epochs of a 3,476-photo training split), under an
hour on a 2-core CPU (what it reaches, measured:
experiments/time_to_quality/README.md):

  ./launch.sh train configs/dermnet.py:cpu --workdir runs/dermnet_cpu \
      --config.dataset.manual_dir=~/data/dermnet_nz

With ':vit_small_cpu': a DINOv2 ViT-S/14 from your weight file, frozen, its
features of each photo computed once and cached, the head fitted on them
(config.frozen_features), minutes on a 2-core CPU; ':vit_small' and
':vit_base' fine-tune all of it on an accelerator, with layer-wise decay,
after the same head fit (what they reach, measured:
experiments/backbones/README.md; where to get the weights: README.md,
"Pretrained backbones"):

  ./launch.sh train configs/dermnet.py:vit_small_cpu \
      --workdir runs/dermnet_vit --config.dataset.manual_dir=~/data/dermnet_nz \
      --config.model.init_from=~/weights/dinov2_vits14.safetensors
"""

from skinjax.config import defaults
from skinjax.config import recipes


VARIANTS = ('efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2',
            'resnet50', 'cpu', 'vit_small_cpu', 'vit_small', 'vit_base')


def get_config(variant='efficientnet_lite0'):
  recipes.check_variant(variant, VARIANTS)
  config = defaults.get_config()
  config.dataset.name = 'dermnet/23'
  config.image_size = 224
  config.batch_size = 128
  config.eval_batch_size = 256
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.best_metric = 'balanced_accuracy'
  if variant == 'cpu':
    return _cpu_recipe(config)
  if variant == 'vit_small_cpu':  # a 2-core CPU's half-hour
    recipes.frozen_vit(config)
    # Clinical photos show lesions smaller than dermoscopy does, and the
    # stored ones have a 256 px short side: 168 px (12x12 patches).
    config.image_size = 168
    return config
  if variant in ('vit_small', 'vit_base'):  # about 20 epochs after the head
    recipes.vit_finetune(config, f'{variant}_patch14_dinov2')
    config.num_train_steps = 2_700
    config.optimizer.warmup_steps = 200
    return config
  if variant == 'resnet50':
    config.model.name = 'resnet50'
    # ~17,500 training photos: about 50 epochs from scratch.
    config.num_train_steps = 7_000
    config.optimizer.learning_rate = 0.1
    config.optimizer.warmup_steps = 500
    config.optimizer.weight_decay = 1e-4
  else:
    recipes.imagenet_finetune(config, variant)
    # About 25 epochs of fine-tuning.
    config.num_train_steps = 3_500
    config.optimizer.warmup_steps = 300
  return config


def _cpu_recipe(config):
  """Sized for a 2-core CPU's hour (experiments/time_to_quality)."""
  recipes.cpu_finetune(config)
  # Clinical photos show the lesion smaller than dermoscopy does: more
  # resolution than the HAM10000 recipe's 96 px.
  config.image_size = 128
  config.eval_image_size = 160
  config.num_train_steps = 2_000
  # Groups range from ~80 to ~400 training photos, each drawn equally often
  # (cpu_finetune; sampling against loss weights: experiments/time_to_quality).
  config.optimizer.warmup_steps = 150
  config.eval_every_steps = 400
  config.checkpoint_every_steps = 400
  return config

