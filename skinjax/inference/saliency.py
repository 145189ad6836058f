"""Grad-CAM (Selvaraju et al., 2017): where in a photo the evidence for a
class lies, from the gradient of its logit at the model's last convolutional
feature map (marked by models.layers.expose_features in every architecture).
"""

import jax
import jax.numpy as jnp
from matplotlib import colormaps
from matplotlib.figure import Figure
import numpy as np

from skinjax.models import layers
from skinjax.parallel import sharding


def grad_cam(model, variables, images, class_indices):
  """Heat maps in [0, 1] at the images' resolution, one per image, for the
  class given per image. Pure: jit it with the model bound."""
  def class_score(perturbation):
    logits, state = model.apply(
        {**variables, 'perturbations': {layers.FEATURES: perturbation}},
        images, train=False, mutable=['intermediates'])
    score = jnp.take_along_axis(logits, class_indices[:, None], axis=1).sum()
    return score, state['intermediates'][layers.FEATURES][0]

  feature_shape = jax.eval_shape(
      lambda: model.apply(variables, images, train=False,
                          mutable=['intermediates'])[1])['intermediates'][
                              layers.FEATURES][0]
  grads, features = jax.grad(class_score, has_aux=True)(
      jnp.zeros(feature_shape.shape, feature_shape.dtype))
  weights = jnp.mean(grads.astype(jnp.float32), axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(weights * features.astype(jnp.float32), axis=-1))
  cam = jax.image.resize(cam, (cam.shape[0], *images.shape[1:3]), 'bilinear')
  peak = cam.max(axis=(1, 2), keepdims=True)
  return jnp.where(peak > 0, cam / jnp.where(peak > 0, peak, 1), 0)


def grad_cam_batches(model, state, images, classes, mesh,
                     batch_size: int) -> list:
  """grad_cam of every image for its class, `batch_size` at a time, each
  batch padded to whole batches per device."""
  cam_fn = jax.jit(lambda variables, x, c: grad_cam(model, variables, x, c))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  maps = []
  for start in range(0, len(images), batch_size):
    x, c = images[start:start + batch_size], classes[start:start + batch_size]
    pad = (-len(x)) % jax.device_count()
    x, c = np.concatenate([x, x[:1].repeat(pad, 0)]), np.concatenate(
        [c, c[:1].repeat(pad)])
    batch = sharding.shard_batch({'x': x, 'c': c}, mesh)
    maps += list(np.asarray(cam_fn(variables, batch['x'], batch['c']))
                 [:len(x) - pad])
  return maps


def save_overlay(image: np.ndarray, cam: np.ndarray, title: str,
                 path: str) -> str:
  """The photo beside it with the heat map blended over it, as PNG."""
  heat = colormaps['jet'](cam)[..., :3]
  blended = 0.55 * image.astype(np.float32) / 255 + 0.45 * heat
  fig = Figure(figsize=(6.4, 3.6))
  for ax, shown, label in zip(fig.subplots(1, 2), (image, blended),
                              ('photo (model input)', 'Grad-CAM')):
    ax.imshow(shown)
    ax.set_title(label, fontsize=9)
    ax.axis('off')
  fig.suptitle(title, fontsize=10)
  fig.savefig(path, dpi=120, bbox_inches='tight')
  return path
