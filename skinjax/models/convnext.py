"""ConvNeXt (Liu et al. 2022) in flax.linen, as timm and Hugging Face build it.

A patchify stem (4x4, stride 4) and four stages of blocks: depthwise 7x7,
LayerNorm, an inverted MLP (4x) with GELU, LayerScale, stochastic depth;
between stages a LayerNorm and a 2x2 convolution of stride 2. The head
averages the last map, normalises it and classifies. No BatchNorm: no
statistics to freeze or synchronise.

Parameter names are skinjax's own; skinjax.models.weight_layouts maps timm's
(`stages.N.blocks.M.conv_dw`) and Hugging Face's (`ConvNextModel`) onto them.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from skinjax.models import layers

# name: (blocks per stage, channels per stage).
VARIANTS = {
    'convnext_tiny': ((3, 3, 9, 3), (96, 192, 384, 768)),
    'convnext_small': ((3, 3, 27, 3), (96, 192, 384, 768)),
}
STAGES = 5  # the stem and four stages


class Block(nn.Module):
  drop_path_rate: float
  conv: Any
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    channels = x.shape[-1]
    y = self.conv(channels, (7, 7), padding=((3, 3), (3, 3)),
                  feature_group_count=channels, name='depthwise')(x)
    y = nn.LayerNorm(1e-6, dtype=self.dtype, name='norm')(y)
    y = nn.Dense(4 * channels, dtype=self.dtype, name='mlp_in')(y)
    y = nn.Dense(channels, dtype=self.dtype, name='mlp_out')(
        nn.gelu(y, approximate=False))
    gamma = self.param('gamma', nn.initializers.constant(1e-6), (channels,))
    y = y * gamma.astype(y.dtype)
    return x + layers.DropPath(self.drop_path_rate)(y,
                                                    deterministic=not train)


class ConvNeXt(nn.Module):
  """ConvNeXt classifier; images in [0, 255]. Stages, for frozen_stages: 0
  is the stem, 1-4 the stages (each with the downsampling before it)."""
  depths: Sequence[int]
  widths: Sequence[int]
  num_classes: int
  dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  frozen_stages: int = 0
  mean_rgb: Sequence[float] = layers.IMAGENET_MEAN
  std_rgb: Sequence[float] = layers.IMAGENET_STD
  dtype: Any = jnp.float32
  layer_forms: str = 'auto'  # layers.LAYER_FORMS: the depthwise convolutions
  freeze_batch_stats: bool = False  # unused: no BatchNorm

  @nn.compact
  def __call__(self, images, train: bool = True):
    x = layers.standardise(images, self.mean_rgb, self.std_rgb, self.dtype)
    conv = lambda *a, **k: layers.Conv(*a, dtype=self.dtype,
                                       layer_forms=self.layer_forms, **k)
    norm = lambda name: nn.LayerNorm(1e-6, dtype=self.dtype, name=name)
    x = conv(self.widths[0], (4, 4), (4, 4), padding='VALID',
             name='stem_conv')(x)
    x = norm('stem_norm')(x)
    x = layers.freeze_stages(x, 0, self.frozen_stages, train)
    total, done = sum(self.depths), 0
    for stage, (depth, width) in enumerate(zip(self.depths, self.widths)):
      trains = train and stage + 1 >= self.frozen_stages
      if stage:
        x = norm(f'downsample_{stage}_norm')(x)
        x = conv(width, (2, 2), (2, 2), padding='VALID',
                 name=f'downsample_{stage}_conv')(x)
      for index in range(depth):
        x = Block(self.drop_path_rate * done / max(total - 1, 1), conv,
                  self.dtype, name=f'block_{stage}_{index}')(x, trains)
        done += 1
      x = layers.freeze_stages(x, stage + 1, self.frozen_stages, train)
    x = layers.expose_features(self, x)
    pooled = norm('norm')(jnp.mean(x, axis=(1, 2)))
    return layers.head(self, pooled, self.num_classes, self.dropout_rate,
                       train)

  def frozen_modules(self) -> frozenset:
    """Names of the top-level modules that `frozen_stages` freezes."""
    if not self.frozen_stages:
      return frozenset()
    names = {'stem_conv', 'stem_norm'}
    for stage, depth in enumerate(self.depths[:self.frozen_stages - 1]):
      names |= {f'block_{stage}_{i}' for i in range(depth)}
      if stage:
        names |= {f'downsample_{stage}_norm', f'downsample_{stage}_conv'}
    return frozenset(names)


def create(name: str, **kwargs) -> ConvNeXt:
  depths, widths = VARIANTS[name]
  return ConvNeXt(depths=depths, widths=widths, **kwargs)


def layer_of(module: str) -> int:
  """Depth of a top-level module, for layer-wise learning-rate decay: the
  stem 0, stage s (its downsampling and blocks) s + 1, None for the final
  norm and head (the top)."""
  if module.startswith(('block_', 'downsample_')):
    return int(module.split('_')[1]) + 1
  return 0 if module.startswith('stem_') else None
