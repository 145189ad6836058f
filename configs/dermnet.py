"""ResNet-50 from scratch on DermNet (23 categories), 224 px.

Point dataset.manual_dir at the Kaggle DermNet zip or its extracted folder:

  python -m skinjax.train --config configs/dermnet.py --workdir runs/dermnet \
      --config.dataset.manual_dir=~/Downloads/dermnet.zip

Use --config.dataset.name=dermnet/20 for the 20-class variant.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'dermnet/23'
  config.model.name = 'resnet50'
  config.image_size = 224
  config.batch_size = 128
  config.eval_batch_size = 256
  # ~17,500 training photos: about 50 epochs.
  config.num_train_steps = 7_000
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_steps = 500
  config.optimizer.weight_decay = 1e-4
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.best_metric = 'balanced_accuracy'
  return config
