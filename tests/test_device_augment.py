"""Augmentation inside the train step (config.augment.on_device): the host
forms' distribution, one key per example of the global batch."""

import jax
import jax.numpy as jnp
import numpy as np

from skinjax.config import defaults
from skinjax.data import device_augment
from skinjax.data import pipeline
from skinjax.data import preprocess


def _augment(**overrides):
  augment = defaults.get_config().augment
  augment.brightness = augment.contrast = augment.saturation = 0.0
  augment.update(overrides)
  return augment


def _distinct_pixels(size=4):
  """Every pixel different: each symmetry gives another image."""
  return np.arange(size * size * 3, dtype=np.float32).reshape(size, size, 3)


def _symmetries(image, turns_only=False):
  flips = (image,) if turns_only else (image, image[:, ::-1])
  return {np.rot90(f, k).tobytes() for f in flips for k in range(4)}


def _run(images, key, augment):
  """augment_batch as the train step runs it: jitted."""
  return np.asarray(jax.jit(
      lambda x, k: device_augment.augment_batch(x, k, augment))(images, key))


def _seen(augment, image, count=128):
  batch = jnp.broadcast_to(image, (count, *image.shape))
  return {o.tobytes() for o in _run(batch, jax.random.PRNGKey(0), augment)}


def test_flips_and_turns_yield_every_symmetry_allowed_and_nothing_else():
  image = _distinct_pixels()
  assert _seen(_augment(), image) == _symmetries(image)
  assert _seen(_augment(hflip=False, vflip=False), image) == _symmetries(
      image, turns_only=True)
  assert _seen(_augment(hflip=False, vflip=False, rot90=False), image) == {
      image.tobytes()}


def test_jitter_is_mild_bounded_and_differs_between_examples():
  rng = np.random.default_rng(1)
  images = jnp.asarray(rng.integers(30, 220, (16, 8, 8, 3)).astype(np.uint8))
  augment = _augment(hflip=False, vflip=False, rot90=False, brightness=0.1,
                     contrast=0.1, saturation=0.1)
  out = _run(images, jax.random.PRNGKey(3), augment)
  assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255
  change = np.abs(out - np.asarray(images)).mean(axis=(1, 2, 3))
  assert (change > 0).all() and change.max() < 40
  # Each example its own draw: the same photo twice is jittered twice.
  twice = _run(jnp.stack([images[0], images[0]]), jax.random.PRNGKey(3),
               augment)
  assert not np.allclose(twice[0], twice[1])


def test_an_example_depends_on_the_step_key_and_its_position_only():
  """So a batch split over any number of devices, or read by any number of
  workers, is augmented the same way."""
  images = jnp.asarray(np.random.default_rng(2).uniform(
      0, 255, (8, 6, 6, 3)).astype(np.float32))
  augment = _augment(brightness=0.1, contrast=0.1, saturation=0.1)
  key = jax.random.PRNGKey(7)
  whole = _run(images, key, augment)
  np.testing.assert_array_equal(_run(images[:4], key, augment), whole[:4])
  other_step = _run(images, jax.random.fold_in(key, 1), augment)
  assert not np.allclose(whole, other_step)


def test_on_device_the_host_only_decodes_and_crops():
  image = preprocess.open_image(_png(_distinct_pixels(16).astype(np.uint8)))
  example = {'image': _png(_distinct_pixels(16).astype(np.uint8)),
             'label': 1}
  augment = _augment(brightness=0.2, contrast=0.2, saturation=0.2,
                     on_device=True)
  out = pipeline.TrainPreprocess(8, augment).random_map(
      example, np.random.default_rng(5))
  crop_only = preprocess.random_resized_crop(
      image, np.random.default_rng(5), 8, tuple(augment.crop_scale),
      tuple(augment.crop_ratio))
  np.testing.assert_array_equal(out['image'], crop_only)
  augment.on_device = False
  on_host = pipeline.TrainPreprocess(8, augment).random_map(
      example, np.random.default_rng(5))
  assert not np.array_equal(on_host['image'], crop_only)


def _png(pixels) -> bytes:
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='PNG')
  return buffer.getvalue()
