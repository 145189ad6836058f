"""EfficientNet-Lite (Tan & Le 2019; TF's efficientnet_lite) in flax.linen.

The Lite variants drop squeeze-excitation, use ReLU6 and keep the stem and
head sizes fixed, which makes them fast on CPUs and mobile hardware. Module
names follow the PyTorch port whose ImageNet weights skinjax converts
(`_blocks.N._depthwise_conv` -> `block_N/depthwise_conv`), and the input
normalisation defaults to the one those weights were trained with.
"""

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from skinjax.models import layers


@dataclasses.dataclass(frozen=True)
class Stage:
  repeats: int
  kernel_size: int
  strides: int
  expand_ratio: int
  in_features: int
  out_features: int


# EfficientNet-B0's stages, before width and depth scaling.
_STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
STAGES = 1 + len(_STAGES)  # the stem and the MBConv stages (the head aside)
# name: (width multiplier, depth multiplier). ImageNet resolutions were 224,
# 240 and 260 px.
VARIANTS = {
    'efficientnet_lite0': (1.0, 1.0),
    'efficientnet_lite1': (1.0, 1.1),
    'efficientnet_lite2': (1.1, 1.2),
}


def round_filters(filters: int, multiplier: float, divisor: int = 8) -> int:
  filters *= multiplier
  rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
  return int(rounded + divisor if rounded < 0.9 * filters else rounded)


@dataclasses.dataclass(frozen=True)
class Block:
  """One MBConv block, after width and depth scaling."""
  stage: int  # its stage's number; the stem is stage 0
  kernel_size: int
  strides: int
  expand_ratio: int
  in_features: int
  out_features: int


def blocks(width_multiplier: float, depth_multiplier: float) -> list:
  """The MBConv blocks in order: all of the architecture but the fixed stem
  and head. Plain data, so that skinjax.bench.torch_step builds its PyTorch
  port from these very blocks without importing flax."""
  result = []
  for i, stage in enumerate(_STAGES):
    fixed = i in (0, len(_STAGES) - 1)  # first and last stage not deepened
    repeats = stage.repeats if fixed else int(
        math.ceil(depth_multiplier * stage.repeats))
    out_features = round_filters(stage.out_features, width_multiplier)
    in_features = round_filters(stage.in_features, width_multiplier)
    for j in range(repeats):
      result.append(Block(i + 1, stage.kernel_size,
                          stage.strides if j == 0 else 1, stage.expand_ratio,
                          in_features if j == 0 else out_features,
                          out_features))
  return result


class MBConv(nn.Module):
  """Inverted residual: expand 1x1, depthwise kxk, project 1x1 (no SE)."""
  block: Block
  drop_path_rate: float
  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool):
    b = self.block
    hidden = b.in_features * b.expand_ratio
    y = x
    if b.expand_ratio != 1:
      y = self.conv(hidden, (1, 1), name='expand_conv')(y)
      y = nn.relu6(self.norm(name='bn0')(y))
    k = b.kernel_size
    y = self.conv(hidden, (k, k), (b.strides, b.strides),
                  feature_group_count=hidden, name='depthwise_conv')(y)
    y = nn.relu6(self.norm(name='bn1')(y))
    y = self.conv(b.out_features, (1, 1), name='project_conv')(y)
    y = self.norm(name='bn2')(y)
    if b.strides == 1 and b.in_features == b.out_features:
      y = layers.DropPath(self.drop_path_rate)(y, deterministic=not train) + x
    return y


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite classifier; images in [0, 255]."""
  width_multiplier: float
  depth_multiplier: float
  num_classes: int
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.0
  freeze_batch_stats: bool = False
  frozen_stages: int = 0  # layers.freeze_stages
  mean_rgb: Sequence[float] = (127.0, 127.0, 127.0)
  std_rgb: Sequence[float] = (128.0, 128.0, 128.0)
  dtype: Any = jnp.float32
  layer_forms: str = 'auto'  # layers.LAYER_FORMS

  @nn.compact
  def __call__(self, images, train: bool = True):
    x, conv, norm = layers.backbone_start(self, images, train,
                                          momentum=0.99, epsilon=1e-3)

    x = conv(32, (3, 3), (2, 2), name='stem_conv')(x)  # stem not scaled
    x = nn.relu6(norm(0)(name='stem_bn')(x))
    x = layers.freeze_stages(x, 0, self.frozen_stages, train)
    mbconvs = blocks(self.width_multiplier, self.depth_multiplier)
    for index, block in enumerate(mbconvs):
      x = MBConv(block, self.drop_path_rate * index / len(mbconvs), conv=conv,
                 norm=norm(block.stage), name=f'block_{index}')(
                     x, train and block.stage >= self.frozen_stages)
      if index + 1 == len(mbconvs) or mbconvs[index + 1].stage != block.stage:
        x = layers.freeze_stages(x, block.stage, self.frozen_stages, train)
    x = conv(1280, (1, 1), name='head_conv')(x)  # head not scaled
    x = nn.relu6(norm(STAGES)(name='head_bn')(x))
    return layers.classifier(self, x, self.num_classes, self.dropout_rate,
                             train)


  def frozen_modules(self) -> frozenset:
    """Names of the top-level modules that `frozen_stages` freezes."""
    if not self.frozen_stages:
      return frozenset()
    mbconvs = blocks(self.width_multiplier, self.depth_multiplier)
    return frozenset({'stem_conv', 'stem_bn'} | {
        f'block_{index}' for index, block in enumerate(mbconvs)
        if block.stage < self.frozen_stages})


def create(name: str, **kwargs) -> EfficientNetLite:
  width, depth = VARIANTS[name]
  return EfficientNetLite(width_multiplier=width, depth_multiplier=depth,
                          **kwargs)
