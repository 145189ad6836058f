"""The classifier head fitted on a frozen backbone's cached features.

A softmax regression over the features of every training photo and view,
trained with AdamW on a cosine schedule in mini-batches (one compiled epoch,
seconds on a CPU), on features standardised per dimension so one learning
rate suits any backbone; the standardisation is folded back into the
head's kernel and bias, so the result is an ordinary `Dense` head of the
model. The epoch kept is the one with the best validation metric.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from skinjax.evaluation import metrics as metrics_lib


@dataclasses.dataclass(frozen=True)
class Settings:
  epochs: int
  batch_size: int
  learning_rate: float
  weight_decay: float
  label_smoothing: float
  seed: int
  metric: str  # a metrics_lib.CHECKPOINT_METRICS name: higher is better

  @classmethod
  def from_config(cls, config) -> 'Settings':
    section = config.frozen_features
    return cls(epochs=section.epochs, batch_size=section.batch_size,
               learning_rate=section.learning_rate,
               weight_decay=section.weight_decay,
               label_smoothing=config.label_smoothing, seed=config.seed,
               metric=config.best_metric)


@dataclasses.dataclass(frozen=True)
class Fitted:
  kernel: np.ndarray  # (dim, classes), applied to the raw features
  bias: np.ndarray  # (classes,)
  epoch: int  # the one kept, from 1
  validation: dict  # metrics_lib.classification_metrics at that epoch
  history: list  # the validation metric after each epoch


def fit(features, labels, val_features, val_labels, class_names,
        settings: Settings, class_weights=None, start=None,
        trainable=None) -> Fitted:
  """The head on `features` (views, photos, dim) with `labels` (photos,),
  kept at its best epoch on (val_features, val_labels); `class_weights`
  (classes,) weigh the loss.

  `start` (kernel, bias), on the raw features: where the head starts (else
  zeros), and then also a candidate (epoch 0), so fitting never keeps a head
  worse on validation than its start. `trainable` (classes,) bool: the
  columns that may move; the others' updates are zeroed and the result holds
  their `start` values bit for bit (extending a run keeps its old classes'
  rows this way)."""
  views, photos, dim = features.shape
  x = features.reshape(views * photos, dim).astype(np.float32)
  y = np.tile(labels, views).astype(np.int32)
  mean, scale = x.mean(0), x.std(0) + 1e-6
  standard = lambda f: (f - mean) / scale
  num_classes = len(class_names)
  weights = jnp.ones(num_classes) if class_weights is None else jnp.asarray(
      class_weights, jnp.float32)
  batch = min(settings.batch_size, len(x))
  steps = len(x) // batch
  schedule = optax.cosine_decay_schedule(settings.learning_rate,
                                         settings.epochs * steps)
  tx = optax.adamw(schedule, weight_decay=settings.weight_decay,
                   mask={'kernel': True, 'bias': False})
  if start is None:
    params = {'kernel': jnp.zeros((dim, num_classes)),
              'bias': jnp.zeros(num_classes)}
  else:  # The start in the standardised features' terms.
    kernel, bias = (np.asarray(v, np.float32) for v in start)
    params = {'kernel': jnp.asarray(kernel * scale[:, None]),
              'bias': jnp.asarray(bias + mean @ kernel)}
  moves = np.ones(num_classes, bool) if trainable is None else np.asarray(
      trainable, bool)
  mask = {'kernel': jnp.asarray(moves[None, :], jnp.float32),
          'bias': jnp.asarray(moves, jnp.float32)}
  opt_state = tx.init(params)

  def loss(params, x, y):
    logits = x @ params['kernel'] + params['bias']
    targets = optax.smooth_labels(jax.nn.one_hot(y, num_classes),
                                  settings.label_smoothing)
    return jnp.mean(weights[y] * optax.softmax_cross_entropy(logits, targets))

  @jax.jit
  def epoch(params, opt_state, x, y, key):
    order = jax.random.permutation(key, len(x))[:steps * batch].reshape(
        steps, batch)

    def step(carry, indices):
      params, opt_state = carry
      grads = jax.grad(loss)(params, x[indices], y[indices])
      updates, opt_state = tx.update(grads, opt_state, params)
      updates = jax.tree.map(jnp.multiply, updates, mask)
      return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(step, (params, opt_state), order)[0]

  x_train, x_val = jnp.asarray(standard(x)), standard(val_features)
  key = jax.random.PRNGKey(settings.seed)
  best, history = None, []
  for number in range(0 if start is not None else 1, settings.epochs + 1):
    if number:
      key, epoch_key = jax.random.split(key)
      params, opt_state = epoch(params, opt_state, x_train, y, epoch_key)
    kernel, bias = (np.asarray(params['kernel']), np.asarray(params['bias']))
    validation = metrics_lib.classification_metrics(
        x_val @ kernel + bias, val_labels, class_names)
    history.append(validation[settings.metric])
    if best is None or validation[settings.metric] > best[0]:
      best = (validation[settings.metric], number, kernel, bias, validation)
  _, number, kernel, bias, validation = best
  # Folded: (f - mean) / scale @ W + b == f @ (W / scale) + (b - mean / scale
  # @ W).
  kernel, bias = ((kernel / scale[:, None]).astype(np.float32),
                  (bias - (mean / scale) @ kernel).astype(np.float32))
  if start is not None:  # Unmoved columns exactly as they came, not folded.
    kernel = np.where(moves[None, :], kernel, np.asarray(start[0], np.float32))
    bias = np.where(moves, bias, np.asarray(start[1], np.float32))
  return Fitted(kernel=kernel, bias=bias, epoch=number, validation=validation,
                history=history)
