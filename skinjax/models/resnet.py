"""ResNet v1.5 (He et al. 2016, stride on the 3x3 conv) in flax.linen.

Takes uint8 or float images in [0, 255] and normalises them itself, so the
normalisation always travels with the weights it belongs to.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from skinjax.models import layers

ModuleDef = Any


class _Block(nn.Module):
  """What both residual blocks take, and how they join their input."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  drop_path_rate: float = 0.0

  def join(self, x, y, train: bool):
    """relu(x + y): x projected by a strided 1x1 conv where the shapes
    differ, y dropped by stochastic depth. Call it from the compact
    __call__."""
    if x.shape != y.shape:
      x = self.conv(y.shape[-1], (1, 1), (self.strides, self.strides),
                    name='conv_proj')(x)
      x = self.norm(name='norm_proj')(x)
    y = layers.DropPath(self.drop_path_rate)(y, deterministic=not train)
    return nn.relu(x + y)


class BasicBlock(_Block):
  """Two 3x3 convolutions; ResNet-18 and -34."""

  @nn.compact
  def __call__(self, x, train: bool):
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3))(y)
    # Zero-init the last BN scale so each block starts as the identity.
    y = self.norm(scale_init=nn.initializers.zeros_init())(y)
    return self.join(x, y, train)


class BottleneckBlock(_Block):
  """1x1 -> 3x3 (strided) -> 1x1 with 4x expansion; ResNet-50 and deeper."""

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters * 4, (1, 1))(y)
    y = self.norm(scale_init=nn.initializers.zeros_init())(y)
    return self.join(x, y, train)


class ResNet(nn.Module):
  """ResNet classifier; `width` is the number of filters of the first stage."""
  stage_sizes: Sequence[int]
  block_cls: ModuleDef
  num_classes: int
  width: int = 64
  dropout_rate: float = 0.0
  drop_path_rate: float = 0.0  # stochastic depth, rising linearly to this
  freeze_batch_stats: bool = False  # use running statistics in training too
  mean_rgb: Sequence[float] = (0.485 * 255, 0.456 * 255, 0.406 * 255)
  std_rgb: Sequence[float] = (0.229 * 255, 0.224 * 255, 0.225 * 255)
  dtype: Any = jnp.float32
  layer_forms: str = 'auto'  # layers.LAYER_FORMS
  frozen_stages: int = 0  # layers.freeze_stages

  @nn.compact
  def __call__(self, images, train: bool = True):
    x, conv, norm = layers.backbone_start(self, images, train,
                                          momentum=0.9, epsilon=1e-5)

    x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)],
             name='conv_init')(x)
    x = nn.relu(norm(0)(name='bn_init')(x))
    x = layers.max_pool(x, (3, 3), (2, 2), self.layer_forms)
    x = layers.freeze_stages(x, 0, self.frozen_stages, train)
    num_blocks, index = sum(self.stage_sizes), 0
    for i, stage_blocks in enumerate(self.stage_sizes):
      for j in range(stage_blocks):
        x = self.block_cls(
            self.width * 2**i, conv=conv, norm=norm(i + 1),
            strides=2 if i > 0 and j == 0 else 1,
            drop_path_rate=self.drop_path_rate * index / num_blocks,
            name=self._block_name(index))(x, train and i + 1 >=
                                          self.frozen_stages)
        index += 1
      x = layers.freeze_stages(x, i + 1, self.frozen_stages, train)
    return layers.classifier(self, x, self.num_classes, self.dropout_rate,
                             train)

  def _block_name(self, index: int) -> str:
    return f'{self.block_cls.__name__}_{index}'  # flax's automatic names

  def frozen_modules(self) -> frozenset:
    """Names of the top-level modules that `frozen_stages` freezes."""
    if not self.frozen_stages:
      return frozenset()
    frozen_blocks = sum(self.stage_sizes[:self.frozen_stages - 1])
    return frozenset({'conv_init', 'bn_init'} | {
        self._block_name(index) for index in range(frozen_blocks)})


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2),
                             block_cls=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3),
                             block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3),
                             block_cls=BottleneckBlock)
