"""Flips, 90-degree turns and colour jitter inside the jitted train step.

With `config.augment.on_device`, the host only decodes and crops; these run
on the accelerator, where they cost next to nothing, instead of on the
host's cores (jitter alone is about a quarter of the per-image CPU time of
the host pipeline). Example e of global batch s draws its transform from
the key of (the run's key, s, e) alone, so the batch a step sees is the same
whatever the device, process and worker counts, and a resumed run sees the
batches the uninterrupted one saw.

The draws follow preprocess.flip_and_rotate and preprocess.colour_jitter
(the host forms), from another random stream: a run is reproducible with
either, not the same under both.
"""

import jax
import jax.numpy as jnp
import numpy as np

# Folded into the step's key to make the augmentation's stream; the dropout
# stream folds in micro-batch indices, which never reach it.
_STREAM = 2**31 - 1
# numpy, not jnp: a jax array made at import would start the backend before
# jax.distributed.initialize may run.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def augment_batch(images, step_key, augment):
  """`images` [B, H, W, 3] (uint8 or float in [0, 255], square) -> float32,
  each example transformed with its own key from `step_key`."""
  key = jax.random.fold_in(step_key, _STREAM)
  keys = jax.vmap(lambda e: jax.random.fold_in(key, e))(
      jnp.arange(images.shape[0]))
  return jax.vmap(lambda image, k: augment_image(image, k, augment))(
      images, keys)


def augment_image(image, key, augment):
  """One example: a random element of the symmetry group the config allows,
  then brightness, contrast and saturation jitter."""
  flip_h, flip_v, turn, bright, contr, sat = jax.random.split(key, 6)
  x = image.astype(jnp.float32)
  if augment.hflip:
    x = jnp.where(jax.random.bernoulli(flip_h), x[:, ::-1], x)
  if augment.vflip:
    x = jnp.where(jax.random.bernoulli(flip_v), x[::-1], x)
  if augment.rot90:
    x = jax.lax.switch(jax.random.randint(turn, (), 0, 4),
                       [lambda y, k=k: jnp.rot90(y, k) for k in range(4)], x)
  if not (augment.brightness or augment.contrast or augment.saturation):
    return x
  x = x * _uniform(bright, augment.brightness)
  grey_mean = jnp.mean(x @ _LUMA)
  x = (x - grey_mean) * _uniform(contr, augment.contrast) + grey_mean
  grey = (x @ _LUMA)[..., None]
  x = grey + _uniform(sat, augment.saturation) * (x - grey)
  return jnp.clip(x, 0, 255)


def _uniform(key, fraction: float):
  """A factor in [1 - fraction, 1 + fraction]."""
  return jax.random.uniform(key, (), jnp.float32, 1 - fraction, 1 + fraction)
