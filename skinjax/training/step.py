"""The train step, a pure function of (state, batch), and its compiled form."""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from skinjax.data import device_augment as augment_lib
from skinjax.data import mixing
from skinjax.parallel import sharding
from skinjax.training import loss as loss_lib


@dataclasses.dataclass(frozen=True, eq=False)
class StepOptions:
  """Everything of the config that the train step reads, made once
  (from_config). Hashed by identity: jit treats it as static."""
  learning_rate_fn: Callable  # the optimiser's own schedule, for the log
  label_smoothing: float = 0.0
  class_weights: Any = None
  grad_accum_steps: int = 1
  ema_decay: float = 0.0
  device_augment: Any = None  # config.augment when augmenting in the step
  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0

  @classmethod
  def from_config(cls, config, schedule,
                  class_weights=None) -> 'StepOptions':
    """The config's loss, accumulation, EMA and in-step augmentation;
    `schedule` is the one the optimiser was built with."""
    return cls(learning_rate_fn=schedule,
               label_smoothing=config.label_smoothing,
               class_weights=class_weights,
               grad_accum_steps=config.grad_accum_steps,
               ema_decay=config.ema_decay,
               device_augment=(config.augment if config.augment.on_device
                               else None),
               mixup_alpha=config.augment.mixup_alpha,
               cutmix_alpha=config.augment.cutmix_alpha)


def train_step(state, batch, *, model, tx, options: StepOptions):
  """One optimiser step on a (globally sharded) batch; returns state, metrics.

  With `options.device_augment` (config.augment), the batch's flips, turns
  and colour jitter are drawn here (skinjax/data/device_augment.py); with
  `mixup_alpha` or `cutmix_alpha`, the batch is then mixed with itself
  (skinjax/data/mixing.py). The batch is split into `grad_accum_steps`
  micro-batches whose gradients are averaged. A step whose loss, gradients
  or new weights are not finite changes nothing but the step counter
  (metrics['finite'] says so), so a bad batch can never corrupt the state.
  """
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  if options.device_augment is not None:
    batch = dict(batch, image=augment_lib.augment_batch(
        batch['image'], dropout_rng, options.device_augment))
  if options.mixup_alpha or options.cutmix_alpha:
    image, partner_label, partner_share = mixing.mix_batch(
        batch['image'], batch['label'], dropout_rng, options.mixup_alpha,
        options.cutmix_alpha)
    batch = dict(batch, image=image, partner_label=partner_label,
                 partner_share=partner_share)

  def loss_fn(params, batch_stats, micro_batch, rng):
    logits, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, micro_batch['image'],
        train=True, mutable=['batch_stats'], rngs={'dropout': rng})
    loss = loss_lib.cross_entropy_loss(
        logits, micro_batch['label'], options.label_smoothing,
        options.class_weights,
        micro_batch.get('partner_label'), micro_batch.get('partner_share'))
    correct = jnp.sum(jnp.argmax(logits, -1) == micro_batch['label'])
    return loss, (correct, updates.get('batch_stats', {}))

  def accumulate(carry, micro_batch_and_index):
    grads_sum, loss_sum, correct_sum, batch_stats = carry
    micro_batch, i = micro_batch_and_index
    (loss, (correct, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params, batch_stats, micro_batch,
                               jax.random.fold_in(dropout_rng, i))
    grads_sum = jax.tree.map(jnp.add, grads_sum, grads)
    return (grads_sum, loss_sum + loss, correct_sum + correct,
            batch_stats), None

  start = (jax.tree.map(jnp.zeros_like, state.params), 0.0, 0,
           state.batch_stats)
  grad_accum_steps = options.grad_accum_steps
  if grad_accum_steps == 1:  # no scan: XLA:CPU runs a scan's body ~9x slower
    totals, _ = accumulate(start, (batch, 0))
  else:
    totals, _ = jax.lax.scan(
        accumulate, start, (_micro_batches(batch, grad_accum_steps),
                            jnp.arange(grad_accum_steps)))
  grads, loss, correct, batch_stats = totals
  grads = jax.tree.map(lambda g: g / grad_accum_steps, grads)
  loss = loss / grad_accum_steps
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  updates = _without_frozen(updates, model)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema
  if ema is not None:  # warmed up as tf.train.ExponentialMovingAverage
    decay = jnp.minimum(options.ema_decay,
                        (1.0 + state.step) / (10.0 + state.step))
    ema = optax.incremental_update(
        {'params': params, 'batch_stats': batch_stats}, ema, 1.0 - decay)
  finite = jnp.isfinite(loss) & _all_finite((grads, params))
  updated = state.replace(params=params, batch_stats=batch_stats,
                          opt_state=opt_state, ema=ema)
  new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                           updated, state).replace(step=state.step + 1)
  metrics = {
      'loss': loss,
      'accuracy': correct / batch['label'].shape[0],
      'learning_rate': options.learning_rate_fn(state.step),
      'grad_norm': optax.tree.norm(grads),
      'finite': finite,
  }
  return new_state, metrics


def _without_frozen(updates, model):
  """Zero updates for the model's frozen stages: their gradient is zero
  already, but weight decay would still move them."""
  frozen = model.frozen_modules()
  return {name: jax.tree.map(jnp.zeros_like, update) if name in frozen
          else update for name, update in updates.items()}


def frozen_stages(model_config, step: int) -> int:
  """How many stages step `step` (1-based) freezes: config.model's
  frozen_stages, for its first frozen_until_step steps (all when 0)."""
  until = model_config.frozen_until_step
  return model_config.frozen_stages if not until or step <= until else 0


def _micro_batches(batch, num: int):
  """[B, ...] -> [num, B / num, ...]; micro-batch i takes every num-th
  example, so each stays spread over all devices like the batch itself."""
  return jax.tree.map(
      lambda x: jnp.swapaxes(x.reshape(-1, num, *x.shape[1:]), 0, 1), batch)


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                            for x in jax.tree.leaves(tree)]))


def jit_train_step(mesh, model, tx, options: StepOptions):
  """train_step compiled for a replicated state and a data-sharded batch,
  the state donated: the one way a train step is built."""
  step = functools.partial(train_step, model=model, tx=tx, options=options)
  return jax.jit(step,
                 in_shardings=(sharding.replicated(mesh),
                               sharding.batch_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh),
                 donate_argnums=0)
