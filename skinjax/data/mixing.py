"""Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019), inside the
jitted train step: each example is mixed with its partner, the example at
the mirrored position of the global batch, and learns both labels in
proportion (skinjax.training.loss.cross_entropy_loss's `partner_*`).

One draw per step, shared by the batch: the share of the partner, from
Beta(alpha, alpha), and with both alphas set, which of the two (CutMix with
probability 1/2). The draw comes from the step's key alone, so a resumed
run mixes as the uninterrupted one did.
"""

import jax
import jax.numpy as jnp

# Folded into the step's key (device_augment uses 2**31 - 1).
_STREAM = 2**31 - 2


def mix_batch(images, labels, step_key, mixup_alpha: float,
              cutmix_alpha: float):
  """(images float32, partner labels [B], partner share [B]) of a batch of
  NHWC `images` and int `labels`; a partner share s means the example
  counts as (1 - s) its own label and s its partner's."""
  key_choice, key_share, key_box = jax.random.split(
      jax.random.fold_in(step_key, _STREAM), 3)
  images = images.astype(jnp.float32)
  partners = images[::-1]
  candidates = []
  if mixup_alpha:
    candidates.append(_mixup(images, partners, jax.random.beta(
        key_share, mixup_alpha, mixup_alpha)))
  if cutmix_alpha:
    candidates.append(_cutmix(images, partners, jax.random.beta(
        key_share, cutmix_alpha, cutmix_alpha), key_box))
  mixed, share = candidates[-1]
  if len(candidates) == 2:
    use_cutmix = jax.random.bernoulli(key_choice)
    mixed = jnp.where(use_cutmix, candidates[1][0], candidates[0][0])
    share = jnp.where(use_cutmix, candidates[1][1], candidates[0][1])
  return mixed, labels[::-1], jnp.full(labels.shape, share, jnp.float32)


def _mixup(images, partners, share):
  return (1 - share) * images + share * partners, share


def _cutmix(images, partners, share, key):
  """The partner's pixels in a box of about `share` of the image, placed
  uniformly (clipped at the borders); the share is the box's real area."""
  height, width = images.shape[1:3]
  centre_y, centre_x = jax.random.split(key)
  side = jnp.sqrt(share)
  cy = jax.random.uniform(centre_y, (), minval=0, maxval=height)
  cx = jax.random.uniform(centre_x, (), minval=0, maxval=width)
  top = jnp.clip(jnp.round(cy - side * height / 2), 0, height)
  bottom = jnp.clip(jnp.round(cy + side * height / 2), 0, height)
  left = jnp.clip(jnp.round(cx - side * width / 2), 0, width)
  right = jnp.clip(jnp.round(cx + side * width / 2), 0, width)
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  mixed = jnp.where(box[None, :, :, None], partners, images)
  return mixed, jnp.mean(box.astype(jnp.float32))
