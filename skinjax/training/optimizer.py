"""Optimiser and learning-rate schedule from `config.optimizer`."""

import jax
import optax

from skinjax import models


def learning_rate_schedule(opt_config, num_train_steps: int) -> optax.Schedule:
  """Linear warmup from 0, then cosine decay to lr * end_learning_rate_factor."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=opt_config.learning_rate,
      warmup_steps=opt_config.warmup_steps,
      decay_steps=max(num_train_steps, opt_config.warmup_steps + 1),
      end_value=opt_config.learning_rate * opt_config.end_learning_rate_factor)


def _decay_mask(params):
  """Weight decay on conv and dense kernels only, not on norms, biases or a
  ViT's learned tokens and position embeddings."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p.ndim > 1 and path[-1].key not in models.NOT_DECAYED,
      params)


def _sgd(opt_config, schedule):
  """SGD with momentum and L2 decay added to the gradient (torch.optim.SGD)."""
  return optax.chain(
      optax.add_decayed_weights(opt_config.weight_decay, mask=_decay_mask),
      optax.sgd(schedule, momentum=opt_config.momentum,
                nesterov=opt_config.nesterov))


def _adamw(opt_config, schedule):
  return optax.adamw(schedule, b1=opt_config.b1, b2=opt_config.b2,
                     eps=opt_config.eps, weight_decay=opt_config.weight_decay,
                     mask=_decay_mask)


# config.optimizer.name -> (config.optimizer, schedule) -> transformation.
OPTIMIZERS = {'sgd': _sgd, 'adamw': _adamw}


def _head_or_backbone(params):
  """Labels every parameter: the classifier head or the backbone."""
  return {name: jax.tree.map(
      lambda _, n=name: 'head' if n == models.HEAD else 'backbone', subtree)
          for name, subtree in params.items()}


def from_config(config) -> tuple:
  """(optimiser, its schedule) of a run's config: the schedule built once."""
  schedule = learning_rate_schedule(config.optimizer, config.num_train_steps)
  return create_optimizer(config.optimizer, schedule,
                          models.LAYER_OF.get(config.model.name)), schedule


def layer_scales(params, decay: float, layer_of) -> dict:
  """decay ** (how many layers below the top): 1 for the head and final
  norm, decay for the last block, decay ** (n + 1) for the embedding of an
  n-block model (BEiT's layer-wise decay, DINOv2's fine-tuning recipe)."""
  depths = {name: layer_of(name) for name in params}
  top = 1 + max((d for d in depths.values() if d is not None), default=0)
  return {name: jax.tree.map(
      lambda _, d=depths[name]: 1.0 if d is None else decay ** (top - d),
      subtree) for name, subtree in params.items()}


def _scale_by_layer(decay: float, layer_of) -> optax.GradientTransformation:
  """Updates scaled per layer (layer_scales): the same as a learning rate
  per layer for SGD and AdamW, weight decay included."""
  def update(updates, state, params=None):
    del params
    scales = layer_scales(updates, decay, layer_of)
    return jax.tree.map(lambda u, s: u * s, updates, scales), state
  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def create_optimizer(opt_config, schedule: optax.Schedule, layer_of=None):
  """The configured optimiser on `schedule` (learning_rate_schedule, built
  once: the train step logs the same one).

  Gradients are clipped first if configured. The backbone (all but the
  models.HEAD parameters) learns at backbone_learning_rate_factor times the
  schedule; at 0 it is frozen. With layer_decay < 1, `layer_of` (the
  model's models.LAYER_OF) scales each layer's updates.
  """
  factor = opt_config.backbone_learning_rate_factor
  base = OPTIMIZERS[opt_config.name]
  tx = base(opt_config, schedule)
  if factor != 1.0:
    backbone = optax.set_to_zero() if factor == 0 else base(
        opt_config, lambda step: factor * schedule(step))
    tx = optax.partition({'head': tx, 'backbone': backbone},
                         _head_or_backbone)
  if opt_config.layer_decay < 1:
    tx = optax.chain(tx, _scale_by_layer(opt_config.layer_decay, layer_of))
  if opt_config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx
