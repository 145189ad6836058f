"""Model registry: names in `config.model.name` -> flax.linen module classes."""

import jax.numpy as jnp

from skinjax.models import resnet

MODELS = {
    'resnet18': resnet.ResNet18,
    'resnet34': resnet.ResNet34,
    'resnet50': resnet.ResNet50,
}

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def create_model(model_config, num_classes: int):
  """Instantiates the configured architecture for `num_classes` outputs."""
  return MODELS[model_config.name](
      num_classes=num_classes,
      width=model_config.width,
      dropout_rate=model_config.dropout_rate,
      dtype=_DTYPES[model_config.dtype])
