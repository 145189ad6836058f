"""Optimiser and learning-rate schedule from `config.optimizer`."""

import jax
import optax


def learning_rate_schedule(opt_config, num_train_steps: int) -> optax.Schedule:
  """Linear warmup from 0, then cosine decay to lr * end_learning_rate_factor."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=opt_config.learning_rate,
      warmup_steps=opt_config.warmup_steps,
      decay_steps=max(num_train_steps, opt_config.warmup_steps + 1),
      end_value=opt_config.learning_rate * opt_config.end_learning_rate_factor)


def _decay_mask(params):
  """Weight decay on conv and dense kernels only, not on norms or biases."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def create_optimizer(opt_config, num_train_steps: int):
  """SGD with momentum and L2 decay (as torch.optim.SGD), or AdamW; optional
  gradient clipping first."""
  schedule = learning_rate_schedule(opt_config, num_train_steps)
  if opt_config.name == 'sgd':
    tx = optax.chain(
        optax.add_decayed_weights(opt_config.weight_decay, mask=_decay_mask),
        optax.sgd(schedule, momentum=opt_config.momentum,
                  nesterov=opt_config.nesterov))
  elif opt_config.name == 'adamw':
    tx = optax.adamw(schedule, b1=opt_config.b1, b2=opt_config.b2,
                     eps=opt_config.eps, weight_decay=opt_config.weight_decay,
                     mask=_decay_mask)
  else:
    raise ValueError(f'Unknown optimizer {opt_config.name!r}')
  if opt_config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx
