"""The loss and the compiled train and eval steps, as pure functions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from skinjax import sharding


def cross_entropy_loss(logits, labels, label_smoothing: float,
                       class_weights=None):
  """Softmax cross-entropy against label-smoothed one-hot targets.

  With `class_weights`, the mean is weighted by the weight of each
  example's class (as torch.nn.CrossEntropyLoss(weight=...)).
  """
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]),
                                label_smoothing)
  losses = optax.softmax_cross_entropy(logits, targets)
  if class_weights is None:
    return losses.mean()
  weights = jnp.asarray(class_weights)[labels]
  return jnp.sum(weights * losses) / jnp.sum(weights)


def balanced_class_weights(labels, num_classes: int) -> np.ndarray:
  """Weights that give every class present the same total weight (mean 1)."""
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  weights = np.divide(len(labels), np.count_nonzero(counts) * counts,
                      out=np.zeros(num_classes), where=counts > 0)
  return weights.astype(np.float32)


def train_step(state, batch, *, model, tx, learning_rate_fn, label_smoothing,
               class_weights=None, grad_accum_steps=1, ema_decay=0.0):
  """One optimiser step on a (globally sharded) batch; returns state, metrics.

  The batch is split into `grad_accum_steps` micro-batches whose gradients
  are averaged. A step whose loss, gradients or new weights are not finite
  changes nothing but the step counter (metrics['finite'] says so), so a bad
  batch can never corrupt the state.
  """
  dropout_rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params, batch_stats, micro_batch, rng):
    logits, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, micro_batch['image'],
        train=True, mutable=['batch_stats'], rngs={'dropout': rng})
    loss = cross_entropy_loss(logits, micro_batch['label'], label_smoothing,
                              class_weights)
    correct = jnp.sum(jnp.argmax(logits, -1) == micro_batch['label'])
    return loss, (correct, updates['batch_stats'])

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
  params = optax.apply_updates(state.params, updates)
  ema = state.ema
  if ema is not None:  # warmed up as tf.train.ExponentialMovingAverage
    decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
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
      'learning_rate': learning_rate_fn(state.step),
      'grad_norm': optax.global_norm(grads),
      'finite': finite,
  }
  return new_state, metrics


def _micro_batches(batch, num: int):
  """[B, ...] -> [num, B / num, ...]; micro-batch i takes every num-th
  example, so each stays spread over all devices like the batch itself."""
  return jax.tree.map(
      lambda x: jnp.swapaxes(x.reshape(-1, num, *x.shape[1:]), 0, 1), batch)


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                            for x in jax.tree.leaves(tree)]))


TTA_VIEWS = {'none': 1, 'flips': 4, 'dihedral': 8}


def tta_views(images, tta: str):
  """The identity first, then flips (and with 'dihedral' 90-degree turns) of
  a batch of NHWC images."""
  views = [images]
  if tta in ('flips', 'dihedral'):
    views += [images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]
  if tta == 'dihedral':
    views += [jnp.rot90(v, 1, axes=(1, 2)) for v in views]
  return views


def eval_step(state, batch, *, model, tta: str = 'none'):
  """Logits with running BatchNorm statistics; labels and mask passed along.

  With test-time augmentation, 'logits' are the mean log-probabilities over
  the views and 'single_view_logits' those of the plain image.
  """
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  logits = [model.apply(variables, view, train=False)
            for view in tta_views(batch['image'], tta)]
  outputs = {'logits': logits[0], 'label': batch['label'],
             'mask': batch['mask']}
  if len(logits) > 1:
    outputs['single_view_logits'] = logits[0]
    outputs['logits'] = jnp.mean(jnp.stack(
        [jax.nn.log_softmax(x) for x in logits]), axis=0)
  return outputs


def jit_train_step(mesh, *, model, tx, learning_rate_fn, label_smoothing,
                   class_weights=None, grad_accum_steps=1, ema_decay=0.0):
  """train_step compiled for a replicated state and a data-sharded batch."""
  step = functools.partial(train_step, model=model, tx=tx,
                           learning_rate_fn=learning_rate_fn,
                           label_smoothing=label_smoothing,
                           class_weights=class_weights,
                           grad_accum_steps=grad_accum_steps,
                           ema_decay=ema_decay)
  return jax.jit(step,
                 in_shardings=(sharding.replicated(mesh),
                               sharding.batch_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh),
                 donate_argnums=0)


def jit_eval_step(mesh, *, model, tta: str = 'none'):
  """eval_step compiled so every process receives all outputs."""
  return jax.jit(functools.partial(eval_step, model=model, tta=tta),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.batch_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh))
