"""Model registry: names in `config.model.name` -> flax.linen modules."""

import functools

import jax.numpy as jnp

from skinjax.models import convnext
from skinjax.models import efficientnet_lite
from skinjax.models import layers
from skinjax.models import resnet
from skinjax.models import vit

MODELS = {
    'resnet18': resnet.ResNet18,
    'resnet34': resnet.ResNet34,
    'resnet50': resnet.ResNet50,
    **{name: functools.partial(efficientnet_lite.create, name)
       for name in efficientnet_lite.VARIANTS},
    **{name: functools.partial(vit.create, name) for name in vit.VARIANTS},
    **{name: functools.partial(convnext.create, name)
       for name in convnext.VARIANTS},
}
# Stages of each architecture, the stem counted (config.model.frozen_stages
# may freeze all of them but the classifier).
STAGES = {'resnet18': 5, 'resnet34': 5, 'resnet50': 5,
          **{name: efficientnet_lite.STAGES
             for name in efficientnet_lite.VARIANTS},
          **{name: vit.stages(name) for name in vit.VARIANTS},
          **{name: convnext.STAGES for name in convnext.VARIANTS}}
# Pixels per patch side of the models that read patches: every image size
# they see is a multiple of it.
PATCH_SIZES = {name: vit.PATCH_SIZE for name in vit.VARIANTS}
# Depth of each top-level parameter or module (models.layer_of), for
# layer-wise learning-rate decay; only the families it is used with.
LAYER_OF = {**{name: vit.layer_of for name in vit.VARIANTS},
            **{name: convnext.layer_of for name in convnext.VARIANTS}}
# Parameters that weight decay leaves alone although they are not vectors.
NOT_DECAYED = vit.TOKENS
# Keyword arguments only some architectures take, and the config key that
# sets each.
_SPECIFIC = {'width': ('resnet18', 'resnet34', 'resnet50')}
# config.model.dtype -> compute dtype.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
HEAD = layers.HEAD
LAYER_FORMS = layers.LAYER_FORMS


def create_model(model_config, num_classes: int):
  """Instantiates the configured architecture for `num_classes` outputs."""
  kwargs = dict(num_classes=num_classes,
                dropout_rate=model_config.dropout_rate,
                drop_path_rate=model_config.drop_path_rate,
                freeze_batch_stats=model_config.freeze_batch_stats,
                dtype=DTYPES[model_config.dtype],
                layer_forms=model_config.layer_forms)
  for key, names in _SPECIFIC.items():
    if model_config.name in names:
      kwargs[key] = model_config[key]
  return MODELS[model_config.name](**kwargs)
