"""The extended head's rows, as pure functions of arrays: the old classes'
kernel columns and biases kept, one column per new class from its photos'
mean backbone feature.

A new column is the mean feature scaled so its norm is the old columns'
mean norm, and its bias is the old biases' mean: its logits then live on the
scale the old rows' do, so no class wins by scale alone before any fitting
(the nearest class mean, Mensink et al. 2013, in the head's own terms).
"""

import numpy as np

# extend.method: 'nearest_mean' keeps these rows; 'head' fits from them.
METHODS = ('head', 'nearest_mean')


def class_means(features, labels, num_classes: int) -> np.ndarray:
  """(num_classes, dim) mean feature of each class's photos (every class
  must have one)."""
  features = np.asarray(features, np.float64)
  return np.stack([features[labels == c].mean(axis=0)
                   for c in range(num_classes)])


def extended(kernel, bias, means) -> tuple:
  """(kernel (dim, old + new), bias (old + new,)): `kernel` and `bias`
  unchanged, then one column per row of `means` (new, dim), scaled to the
  old columns' mean norm, with the old biases' mean."""
  kernel, bias = np.asarray(kernel), np.asarray(bias)
  norm = np.linalg.norm(kernel.astype(np.float64), axis=0).mean()
  means = np.asarray(means, np.float64)
  new = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True),
                           1e-12) * norm
  return (np.concatenate([kernel, new.T.astype(kernel.dtype)], axis=1),
          np.concatenate([bias, np.full(len(means), bias.astype(
              np.float64).mean(), bias.dtype)]))
