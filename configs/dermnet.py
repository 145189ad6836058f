"""DermNet (23 categories), 224 px: EfficientNet-Lite0 fine-tuned from
ImageNet, or with the argument ':resnet50' a ResNet-50 trained from scratch.

Point dataset.manual_dir at the Kaggle DermNet zip or its extracted folder:

  python -m skinjax.train --config configs/dermnet.py --workdir runs/dermnet \
      --config.dataset.manual_dir=~/Downloads/dermnet.zip
  python -m skinjax.train --config configs/dermnet.py:resnet50 ...

Use --config.dataset.name=dermnet/20 for the 20-class variant.
"""

from skinjax.config import defaults


def get_config(arch='efficientnet_lite0'):
  config = defaults.get_config()
  config.dataset.name = 'dermnet/23'
  config.image_size = 224
  config.batch_size = 128
  config.eval_batch_size = 256
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.best_metric = 'balanced_accuracy'
  if arch == 'resnet50':
    config.model.name = 'resnet50'
    # ~17,500 training photos: about 50 epochs from scratch.
    config.num_train_steps = 7_000
    config.optimizer.learning_rate = 0.1
    config.optimizer.warmup_steps = 500
    config.optimizer.weight_decay = 1e-4
  else:
    config.model.name = arch
    config.model.init_from = 'imagenet'
    config.model.dropout_rate = 0.2
    config.model.drop_path_rate = 0.2
    # About 25 epochs of fine-tuning.
    config.num_train_steps = 3_500
    config.optimizer.name = 'adamw'
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 300
    config.optimizer.weight_decay = 0.05
  return config
