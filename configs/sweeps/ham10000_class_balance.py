"""HAM10000, EfficientNet-Lite0 from ImageNet at 64 px for 200 steps: does
weighing every diagnosis equally in the loss raise balanced accuracy, and by
more than two seeds spread? Sized for minutes on a CPU; the figure of
experiments/compare/ comes from it.

  ./launch.sh sweep configs/sweeps/ham10000_class_balance.py \
      --config.dataset.manual_dir=../shared/data/ham10000
"""


def get_sweep():
  return {
      'name': 'ham10000_class_balance',
      'config': '../ham10000.py',
      'fixed': {'image_size': 64, 'batch_size': 32, 'eval_batch_size': 128,
                'num_train_steps': 200, 'optimizer.warmup_steps': 20,
                'log_every_steps': 10, 'eval_every_steps': 50,
                'checkpoint_every_steps': 100},
      'parameters': {'class_balance': ['none', 'loss_weights'],
                     'seed': [0, 1]},
      'method': 'grid',
      'metric': 'val/balanced_accuracy',
      'tags': ('ham10000', 'class_balance'),
  }
