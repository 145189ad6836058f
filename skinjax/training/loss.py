"""The loss: label-smoothed softmax cross-entropy, optionally class-weighted."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

# config.class_balance: 'loss_weights' weighs each class equally here;
# 'sampling' draws each class equally often (skinjax.data.pipeline).
CLASS_BALANCE_MODES = ('none', 'loss_weights', 'sampling')


def cross_entropy_loss(logits, labels, label_smoothing: float,
                       class_weights=None, partner_labels=None,
                       partner_share=None):
  """Softmax cross-entropy against label-smoothed one-hot targets.

  With `class_weights`, the mean is weighted by the weight of each
  example's class (as torch.nn.CrossEntropyLoss(weight=...)). A mixed
  example (skinjax.data.mixing) counts as its label with weight
  1 - `partner_share` and as `partner_labels` with `partner_share`, each
  times its class weight.
  """
  pairs = [(labels, 1.0)]
  if partner_labels is not None:
    pairs = [(labels, 1.0 - partner_share), (partner_labels, partner_share)]
  total_loss = total_weight = 0.0
  for target_labels, share in pairs:
    targets = optax.smooth_labels(
        jax.nn.one_hot(target_labels, logits.shape[-1]), label_smoothing)
    weights = share * (1.0 if class_weights is None
                       else jnp.asarray(class_weights)[target_labels])
    weights = jnp.broadcast_to(weights, target_labels.shape)
    total_loss += jnp.sum(weights * optax.softmax_cross_entropy(logits,
                                                                targets))
    total_weight += jnp.sum(weights)
  return total_loss / total_weight


def balanced_class_weights(labels, num_classes: int) -> np.ndarray:
  """Weights that give every class present the same total weight (mean 1)."""
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  weights = np.divide(len(labels), np.count_nonzero(counts) * counts,
                      out=np.zeros(num_classes), where=counts > 0)
  return weights.astype(np.float32)
