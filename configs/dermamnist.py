"""ResNet-18 from scratch on DermaMNIST (MedMNIST), 64 px.

Point dataset.manual_dir at the folder holding dermamnist_64.npz:

  python -m skinjax.train --config configs/dermamnist.py \
      --workdir runs/dermamnist --config.dataset.manual_dir=~/data/medmnist

For another size: --config.dataset.name=dermamnist/128 --config.image_size=128.
"""

from skinjax.config import defaults


def get_config():
  config = defaults.get_config()
  config.dataset.name = 'dermamnist/64'
  config.model.name = 'resnet18'
  config.image_size = 64
  config.batch_size = 128
  config.eval_batch_size = 500
  config.num_train_steps = 5_000  # ~90 epochs of 7,007 images
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_steps = 250
  config.augment.crop_scale = (0.5, 1.0)
  config.augment.eval_crop_fraction = 1.0  # the images are already crops
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.class_balance = 'loss_weights'
  config.best_metric = 'balanced_accuracy'
  return config
