"""The loss: label-smoothed softmax cross-entropy, optionally class-weighted."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

# config.class_balance: 'loss_weights' weighs each class equally here;
# 'sampling' draws each class equally often (skinjax.data.pipeline).
CLASS_BALANCE_MODES = ('none', 'loss_weights', 'sampling')


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
