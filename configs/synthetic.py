"""ResNet-18 on the embedded synthetic_lesions dataset: the smoke test of the
whole training path, sized to train to >= 0.90 test top-1 in a few minutes on
a 2-core laptop CPU (chance is 1/6).

  python -m skinjax.train --config configs/synthetic.py --workdir runs/synthetic
"""

from skinjax.config import defaults


def get_config():
  config = defaults.get_config()
  config.dataset.name = 'synthetic_lesions'
  config.model.name = 'resnet18'
  config.model.width = 16  # a quarter of the standard width: CPU-sized
  config.image_size = 64
  config.augment.crop_scale = (0.5, 1.0)  # keep most of each lesion pattern
  config.augment.eval_crop_fraction = 1.0  # lesions reach the image border
  config.batch_size = 64
  config.eval_batch_size = 200
  config.num_train_steps = 1_500
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_steps = 100
  config.optimizer.weight_decay = 5e-5
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  return config
