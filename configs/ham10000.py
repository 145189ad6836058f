"""ResNet-50 from scratch on HAM10000 dermoscopy, 224 px, class-weighted loss.

Point dataset.manual_dir at the folder with HAM10000_metadata.csv and the
images (original part_1/part_2 folders or zips, or one folder per dx):

  python -m skinjax.train --config configs/ham10000.py --workdir runs/ham10000 \
      --config.dataset.manual_dir=~/data/ham10000

Splits are by lesion (test 20%, validation 10% of lesions per diagnosis).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'ham10000'
  config.model.name = 'resnet50'
  config.image_size = 224
  config.batch_size = 128
  config.eval_batch_size = 256
  # ~7,000 training images: about 55 epochs.
  config.num_train_steps = 3_000
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_steps = 300
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  # Two thirds of the images are nevi: weigh every diagnosis equally and
  # keep the checkpoint with the best balanced accuracy.
  config.class_balance = 'loss_weights'
  config.best_metric = 'balanced_accuracy'
  return config
