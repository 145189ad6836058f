"""The extended head's rows, as pure functions of arrays: the old classes'
kernel columns and biases kept, one column per new class from its photos'
mean backbone feature.

Backbone features share a large common component, so a column along a
class's raw mean feature scores every photo highly and takes them all (on
DermNet NZ, old classes' balanced accuracy fell from 0.32 to 0.00). A new
column therefore points from the old classes' centre (the mean of their
training-feature means) to the new class's mean, scaled to the old
columns' mean norm; its bias gives the new class, at its own mean, the
logit the old classes have on average at theirs. That is the nearest class
mean (Mensink et al. 2013) in the head's own terms: a photo near a new
class's mean scores it as an old photo scores its class.
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


def extended(kernel, bias, means, old_means) -> tuple:
  """(kernel (dim, old + new), bias (old + new,)): `kernel` and `bias`
  unchanged, then one column per row of `means` (new, dim), as the module
  says; `old_means` (old, dim) are the old classes' training-feature means,
  NaN rows for classes without photos."""
  kernel, bias = np.asarray(kernel), np.asarray(bias)
  wide = kernel.astype(np.float64)
  norm = np.linalg.norm(wide, axis=0).mean()
  old_means = np.asarray(old_means, np.float64)
  present = np.flatnonzero(~np.isnan(old_means).any(axis=1))
  centre = old_means[present].mean(axis=0)
  own_logit = np.mean([old_means[c] @ wide[:, c] + bias[c] for c in present])
  offsets = np.asarray(means, np.float64) - centre
  new = offsets / np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True),
                             1e-12) * norm
  new_bias = own_logit - np.einsum('cd,cd->c', new, np.asarray(
      means, np.float64))
  return (np.concatenate([kernel, new.T.astype(kernel.dtype)], axis=1),
          np.concatenate([bias, new_bias.astype(bias.dtype)]))
