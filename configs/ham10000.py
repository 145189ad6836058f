"""HAM10000 dermoscopy, 224 px, class-weighted loss: EfficientNet-Lite0
fine-tuned from ImageNet, or another variant (`configs/ham10000.py:VARIANT`,
one of VARIANTS): ':efficientnet_lite1' or ':efficientnet_lite2' the same
with a larger Lite, ':resnet50' a ResNet-50 trained from scratch, ':cpu' the
recipe for a small CPU box.

Point dataset.manual_dir at the folder with HAM10000_metadata.csv and the
images (original part_1/part_2 folders or zips, or one folder per dx):

  python -m skinjax.train --config configs/ham10000.py --workdir runs/ham10000 \
      --config.dataset.manual_dir=~/data/ham10000
  python -m skinjax.train --config configs/ham10000.py:resnet50 ...

With ':cpu': Lite0 from ImageNet trained at 96 px with the stem and first
two stages frozen, every diagnosis drawn equally often, scored at 128 px,
450 steps of 32, minutes on a 2-core CPU (what it reaches, measured:
experiments/time_to_quality/README.md):

  ./launch.sh train configs/ham10000.py:cpu --workdir runs/ham10000_cpu \
      --config.dataset.manual_dir=~/data/ham10000

With ':vit_small_cpu': a DINOv2 ViT-S/14 from your weight file, frozen, its
features of each photo computed once and cached, the head fitted on them
(config.frozen_features), minutes on a 2-core CPU; ':vit_small' and
':vit_base' fine-tune all of it on an accelerator, with layer-wise decay,
after the same head fit (what they reach, measured:
experiments/backbones/README.md; where to get the weights: README.md,
"Pretrained backbones"):

  ./launch.sh train configs/ham10000.py:vit_small_cpu \
      --workdir runs/ham10000_vit --config.dataset.manual_dir=~/data/ham10000 \
      --config.model.init_from=~/weights/dinov2_vits14.safetensors

Splits are by lesion (test 20%, validation 10% of lesions per diagnosis).
"""

from skinjax.config import defaults
from skinjax.config import recipes


VARIANTS = ('efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2',
            'resnet50', 'cpu', 'vit_small_cpu', 'vit_small', 'vit_base')


def get_config(variant='efficientnet_lite0'):
  recipes.check_variant(variant, VARIANTS)
  config = defaults.get_config()
  config.dataset.name = 'ham10000'
  config.image_size = 224
  config.batch_size = 128
  config.eval_batch_size = 256
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  # Two thirds of the images are nevi: weigh every diagnosis equally and
  # keep the checkpoint with the best balanced accuracy.
  config.class_balance = 'loss_weights'
  config.best_metric = 'balanced_accuracy'
  if variant == 'cpu':
    return _cpu_recipe(config)
  if variant == 'vit_small_cpu':  # a 2-core CPU's half-hour
    recipes.frozen_vit(config)
    # The stored photos are 200x150: 112 px (8x8 patches) sees most of what
    # they hold, at 2.6x the photos/s of 168 px (experiments/backbones).
    config.image_size = 112
    # Two augmented views beside the centre crop: +0.03 on validation for
    # 2.1x the time (experiments/backbones).
    config.frozen_features.views = 3
    return config
  if variant in ('vit_small', 'vit_base'):  # about 20 epochs after the head
    recipes.vit_finetune(config, f'{variant}_patch14_dinov2')
    config.num_train_steps = 1_100
    config.optimizer.warmup_steps = 100
    return config
  if variant == 'resnet50':
    config.model.name = 'resnet50'
    # ~7,000 training images: about 55 epochs from scratch.
    config.num_train_steps = 3_000
    config.optimizer.learning_rate = 0.1
    config.optimizer.warmup_steps = 300
  else:
    recipes.imagenet_finetune(config, variant)
    # About 30 epochs of fine-tuning.
    config.num_train_steps = 1_600
    config.optimizer.warmup_steps = 150
  return config


def _cpu_recipe(config):
  """Sized for a 2-core CPU's minutes (experiments/time_to_quality)."""
  recipes.cpu_finetune(config)
  config.image_size = 96
  config.eval_image_size = 128  # random crops at 96 ~ centre crops at 128
  config.num_train_steps = 450
  config.optimizer.warmup_steps = 50
  config.eval_every_steps = 150
  config.checkpoint_every_steps = 150
  return config

