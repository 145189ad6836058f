"""The model zoo matches the reference architectures."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skinjax import models
from skinjax.config import defaults


def _num_params(model, size=224):
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0),
                         jnp.zeros((1, size, size, 3), jnp.uint8), train=False))
  return sum(np.prod(x.shape) for x in jax.tree.leaves(shapes['params']))


@pytest.mark.parametrize('name, expected', [
    # torchvision's counts for the same architectures with 1000 classes.
    ('resnet18', 11_689_512),
    ('resnet34', 21_797_672),
    ('resnet50', 25_557_032),
])
def test_parameter_counts_match_torchvision(name, expected):
  config = defaults.get_config().model
  config.name = name
  assert _num_params(models.create_model(config, num_classes=1000)) == expected


def test_width_and_classes_come_from_the_config():
  config = defaults.get_config().model
  config.name, config.width = 'resnet18', 16
  model = models.create_model(config, num_classes=7)
  variables = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)), train=False))
  assert variables['params']['conv_init']['kernel'].shape == (7, 7, 3, 16)
  assert variables['params']['head']['kernel'].shape == (16 * 8, 7)


def test_bfloat16_computes_in_bf16_with_float32_params_and_logits():
  config = defaults.get_config().model
  config.name, config.width, config.dtype = 'resnet18', 8, 'bfloat16'
  model = models.create_model(config, num_classes=3)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)),
                       jnp.uint8)
  variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x,
                                          train=False))(images)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  logits = apply(variables, images)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 3)
  hlo = apply.lower(variables, images).as_text()
  assert 'bf16' in hlo
