"""Grad-CAM: defined for every architecture, and pointing at the lesion."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from skinjax import models
from skinjax.config import defaults
from skinjax.inference import saliency
from skinjax.models import layers
from skinjax.training import loss as loss_lib


def _model(name, num_classes, width=8):
  config = defaults.get_config().model
  config.name, config.width = name, width
  return models.create_model(config, num_classes)


# One model per module that marks its features (ResNet, EfficientNet-Lite);
# the other sizes share the code. EfficientNet's gradient takes half a
# minute to compile: the slow tier checks it.
@pytest.mark.parametrize('name', [
    'resnet18', pytest.param('efficientnet_lite0', marks=pytest.mark.slow)])
def test_grad_cam_is_defined_for_every_architecture(name):
  model = _model(name, 3)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)),
                       jnp.uint8)
  variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x,
                                          train=False))(images)
  cam = jax.jit(lambda v, x, c: saliency.grad_cam(model, v, x, c))(
      variables, images, jnp.array([0, 2]))
  assert cam.shape == (2, 32, 32)
  assert float(cam.min()) >= 0 and float(cam.max()) <= 1


# One model per module in the default tier (tracing a ViT-B is seconds);
# the slow tier traces every registered one.
@pytest.mark.parametrize('which', [
    'one_per_module', pytest.param('all', marks=pytest.mark.slow)])
def test_every_registered_model_exposes_its_feature_map(which):
  """A map of the photo's grid: a CNN's last (stride 32), a ViT's patch
  tokens (one per 14x14 patch)."""
  images = jnp.zeros((1, 224, 224, 3), jnp.uint8)
  names = models.MODELS if which == 'all' else (
      'resnet18', 'efficientnet_lite0', 'vit_small_patch14_reg4_dinov2',
      'convnext_tiny')
  for name in names:
    model = _model(name, 3)
    variables = jax.eval_shape(lambda m=model: m.init(
        jax.random.PRNGKey(0), images, train=False))
    assert 'params' in variables, name
    _, state = jax.eval_shape(lambda v, m=model: m.apply(
        v, images, train=False, mutable=['intermediates']), variables)
    features = state['intermediates'][layers.FEATURES][0]
    side = 224 // getattr(model, 'patch_size', 32)
    assert features.ndim == 4 and features.shape[1:3] == (side, side), name


def _blob_images(rng, n, size=96, radius=10):
  """Textured skin with one round lesion; its colour is the class (brown 0,
  red 1). Returns images, labels and the lesion masks."""
  yy, xx = np.mgrid[:size, :size]
  skin = np.array([224, 180, 150], np.float32)
  colours = np.array([[110, 70, 40], [200, 60, 60]], np.float32)
  images, labels, masks = [], [], []
  for _ in range(n):
    label = rng.integers(2)
    cy, cx = rng.integers(radius + 4, size - radius - 4, 2)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    image = skin * rng.uniform(0.8, 1.1) + rng.normal(0, 12, (size, size, 3))
    image[mask] = colours[label] + rng.normal(0, 12, (mask.sum(), 3))
    images.append(np.clip(image, 0, 255).astype(np.uint8))
    labels.append(label)
    masks.append(mask)
  return np.stack(images), np.array(labels, np.int32), np.stack(masks)


@pytest.mark.slow  # the default tier's 10-minute budget
def test_grad_cam_highlights_the_lesion_more_than_the_skin():
  rng = np.random.default_rng(0)
  model = _model('resnet18', 2)
  images, labels, _ = _blob_images(rng, 64)
  variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x,
                                          train=False))(images[:1])
  params, batch_stats = variables['params'], variables['batch_stats']
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, batch_stats, opt_state, x, y):
    def loss_fn(p):
      logits, updates = model.apply({'params': p, 'batch_stats': batch_stats},
                                    x, train=True, mutable=['batch_stats'])
      return loss_lib.cross_entropy_loss(logits, y, 0.0), updates['batch_stats']
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  for step in range(60):
    batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
    params, batch_stats, opt_state, loss = train_step(
        params, batch_stats, opt_state, images[batch], labels[batch])
  test_images, test_labels, masks = _blob_images(rng, 16)
  variables = {'params': params, 'batch_stats': batch_stats}
  logits = model.apply(variables, test_images, train=False)
  assert np.mean(np.argmax(logits, -1) == test_labels) >= 0.9, float(loss)
  cam = np.asarray(jax.jit(lambda v, x, c: saliency.grad_cam(model, v, x, c))(
      variables, test_images, test_labels))
  inside = np.array([c[m].mean() for c, m in zip(cam, masks)])
  outside = np.array([c[~m].mean() for c, m in zip(cam, masks)])
  assert np.mean(inside > outside) >= 0.8, (inside, outside)
  # A 3x3 feature map upsampled bilinearly blurs into the skin around.
  assert inside.mean() > 1.3 * outside.mean(), (inside.mean(), outside.mean())
