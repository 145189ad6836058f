"""configs/synthetic.py at 300 steps, two learning rates x two seeds: the
learning rate's effect beside the spread that the seed alone makes.

  ./launch.sh sweep configs/sweeps/synthetic_lr_seed.py
"""


def get_sweep():
  return {
      'name': 'synthetic_lr_seed',
      'config': '../synthetic.py',
      'fixed': {'num_train_steps': 300, 'optimizer.warmup_steps': 30,
                'eval_every_steps': 100, 'checkpoint_every_steps': 100},
      'parameters': {'optimizer.learning_rate': [0.03, 0.1], 'seed': [0, 1]},
      'method': 'grid',
      'metric': 'val/balanced_accuracy',
  }
