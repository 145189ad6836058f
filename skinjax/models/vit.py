"""Vision Transformer in the DINOv2 flavour (Oquab et al. 2023), flax.linen.

Pre-norm blocks with LayerScale, a class token, optional register tokens
(Darcet et al. 2024), and learned position embeddings that are resampled to
the photo's grid of patches, so one set of weights scores any image size
that is a multiple of the patch size. The features the head reads are the
class token and the mean of the patch tokens, concatenated, after the final
LayerNorm: DINOv2's own linear-evaluation features.

Grad-CAM (skinjax.inference.saliency) runs on the last block's patch tokens
(after the final norm), reshaped to the grid of patches: the map they form is
the model's FEATURES, as a CNN's last feature map is.

Parameter names are skinjax's own; skinjax.models.weight_files maps the
Hugging Face (`Dinov2Model`) and timm (`vit_*_dinov2`) names onto them.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skinjax.models import layers

# name: (width, depth, heads). DINOv2 trained with 14-pixel patches and
# 37x37 position embeddings (518 px); the registers variants add 4 tokens.
SIZES = {'small': (384, 12, 6), 'base': (768, 12, 12)}
VARIANTS = {
    'vit_small_patch14_dinov2': ('small', 0),
    'vit_base_patch14_dinov2': ('base', 0),
    'vit_small_patch14_reg4_dinov2': ('small', 4),
    'vit_base_patch14_reg4_dinov2': ('base', 4),
}
PATCH_SIZE = 14
# Learned tokens and positions: embeddings, not weights, and never decayed.
TOKENS = ('pos_embedding', 'cls_token', 'register_tokens')


def _cubic(x, a: float):
  """Keys' cubic convolution kernel."""
  x = np.abs(x)
  return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a,
                           0.0))


def resampling_matrix(size_in: int, size_out: int,
                      antialias: bool = True) -> np.ndarray:
  """(size_out, size_in) weights of torch's bicubic `interpolate(size=...,
  align_corners=False)` along one axis: with `antialias` (what timm and
  Hugging Face apply to DINOv2's position embeddings) Keys' a = -0.5 on a
  support widened when shrinking, weights normalised; without, a = -0.75 on
  four taps, the edge repeated."""
  scale = size_in / size_out
  matrix = np.zeros((size_out, size_in))
  for i in range(size_out):
    if antialias:
      center = scale * (i + 0.5)
      support = 2.0 * max(scale, 1.0)
      low = max(int(center - support + 0.5), 0)
      high = min(int(center + support + 0.5), size_in)
      taps = np.arange(low, high)
      weights = _cubic((taps - center + 0.5) / max(scale, 1.0), -0.5)
      matrix[i, taps] = weights / weights.sum()
    else:
      source = scale * (i + 0.5) - 0.5
      first = int(np.floor(source))
      t = source - first
      weights = _cubic(np.array([t + 1, t, 1 - t, 2 - t]), -0.75)
      for offset, weight in zip(range(-1, 3), weights):
        matrix[i, min(max(first + offset, 0), size_in - 1)] += weight
  return matrix.astype(np.float32)


def resample_grid(grid, height: int, width: int, antialias: bool = True):
  """Position embeddings (h, w, d) resampled to (height, width, d), as
  resampling_matrix says; a no-op at their own size."""
  if grid.shape[:2] == (height, width):
    return grid
  rows = resampling_matrix(grid.shape[0], height, antialias)
  columns = resampling_matrix(grid.shape[1], width, antialias)
  return jnp.einsum('ih,jw,hwd->ijd', rows, columns, grid)


class Attention(nn.Module):
  heads: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    batch, tokens, width = x.shape
    head_width = width // self.heads
    dense = lambda name: nn.Dense(width, dtype=self.dtype, name=name)
    split = lambda y: y.reshape(batch, tokens, self.heads, head_width)
    q, k, v = (split(dense(n)(x)) for n in ('query', 'key', 'value'))
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(
        head_width).astype(self.dtype)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(
        self.dtype)
    y = jnp.einsum('bhqk,bkhd->bqhd', weights, v).reshape(batch, tokens,
                                                          width)
    return dense('out')(y)


class LayerScale(nn.Module):
  """A learned per-channel gain on a residual branch (CaiT, DINOv2)."""

  @nn.compact
  def __call__(self, x):
    gamma = self.param('gamma', nn.initializers.constant(1e-5),
                       (x.shape[-1],))
    return x * gamma.astype(x.dtype)


class Block(nn.Module):
  heads: int
  mlp_ratio: int
  drop_path_rate: float
  epsilon: float
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.LayerNorm(self.epsilon, dtype=self.dtype,
                                     name=name)
    drop = lambda y: layers.DropPath(self.drop_path_rate)(
        y, deterministic=not train)
    y = Attention(self.heads, self.dtype, name='attention')(norm('norm1')(x))
    x = x + drop(LayerScale(name='scale1')(y))
    width = x.shape[-1]
    y = nn.Dense(width * self.mlp_ratio, dtype=self.dtype, name='mlp_in')(
        norm('norm2')(x))
    y = nn.Dense(width, dtype=self.dtype, name='mlp_out')(
        nn.gelu(y, approximate=False))
    return x + drop(LayerScale(name='scale2')(y))


class VisionTransformer(nn.Module):
  """DINOv2-style ViT classifier; images in [0, 255], their sides a
  multiple of `patch_size`.

  Stages, for frozen_stages: 0 is the patch embedding (with the tokens and
  position embeddings), stage i the i-th block; the final norm and the head
  always train."""
  width: int
  depth: int
  heads: int
  num_classes: int
  patch_size: int = PATCH_SIZE
  registers: int = 0
  mlp_ratio: int = 4
  epsilon: float = 1e-6
  dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  frozen_stages: int = 0
  mean_rgb: Sequence[float] = layers.IMAGENET_MEAN
  std_rgb: Sequence[float] = layers.IMAGENET_STD
  dtype: Any = jnp.float32
  # Unused (no BatchNorm, no convolution worth a CPU form); accepted so that
  # every model takes the same configuration.
  freeze_batch_stats: bool = False
  layer_forms: str = 'auto'

  @nn.compact
  def __call__(self, images, train: bool = True):
    x = layers.standardise(images, self.mean_rgb, self.std_rgb, self.dtype)
    x, grid = self._embed(x)
    x = layers.freeze_stages(x, 0, self.frozen_stages, train)
    for index in range(self.depth):
      x = Block(self.heads, self.mlp_ratio,
                self.drop_path_rate * index / max(self.depth - 1, 1),
                self.epsilon, self.dtype, name=f'block_{index}')(
                    x, train and index + 1 >= self.frozen_stages)
      x = layers.freeze_stages(x, index + 1, self.frozen_stages, train)
    x = nn.LayerNorm(self.epsilon, dtype=self.dtype, name='norm')(x)
    patches = x[:, 1 + self.registers:].reshape(x.shape[0], *grid,
                                                self.width)
    patches = layers.expose_features(self, patches)
    pooled = jnp.concatenate([x[:, 0], jnp.mean(patches, axis=(1, 2))], -1)
    return layers.head(self, pooled, self.num_classes, self.dropout_rate,
                       train)

  def _embed(self, x):
    """(tokens: class, registers, patches, with position embeddings; the
    grid of patches)."""
    batch, height, width, channels = x.shape
    p = self.patch_size
    grid = (height // p, width // p)
    kernel = self.param('patch_kernel', nn.initializers.lecun_normal(),
                        (p, p, channels, self.width))
    bias = self.param('patch_bias', nn.initializers.zeros_init(),
                      (self.width,))
    # Non-overlapping patches: a reshape and one matmul, which is what a
    # convolution with stride = kernel computes (and fast on any backend).
    x = x[:, :grid[0] * p, :grid[1] * p]
    x = x.reshape(batch, grid[0], p, grid[1], p, channels).transpose(
        0, 1, 3, 2, 4, 5).reshape(batch, grid[0] * grid[1], -1)
    x = x @ kernel.reshape(-1, self.width).astype(self.dtype) + bias.astype(
        self.dtype)
    # The position embeddings' own grid is the one they were trained at (or
    # initialised for); they follow the photo's by resampling.
    # Initialised for the first photo's grid; any other reads them as they
    # are (a shape check would refuse them).
    if self.has_variable('params', 'pos_embedding'):
      positions = self.get_variable('params', 'pos_embedding')
    else:
      positions = self.param('pos_embedding', nn.initializers.normal(0.02),
                             (1, 1 + grid[0] * grid[1], self.width))
    own = int(round((positions.shape[1] - 1) ** 0.5))
    patch_positions = resample_grid(
        positions[0, 1:].reshape(own, own, self.width), *grid).reshape(
            1, -1, self.width)
    cls = self.param('cls_token', nn.initializers.normal(1e-6),
                     (1, 1, self.width)) + positions[:, :1]
    tokens = [jnp.broadcast_to(cls, (batch, 1, self.width)).astype(
        self.dtype)]
    if self.registers:
      registers = self.param('register_tokens', nn.initializers.normal(1e-6),
                             (1, self.registers, self.width))
      tokens.append(jnp.broadcast_to(
          registers, (batch, self.registers, self.width)).astype(self.dtype))
    tokens.append(x + patch_positions.astype(self.dtype))
    return jnp.concatenate(tokens, axis=1), grid

  def frozen_modules(self) -> frozenset:
    """Names of the top-level parameters and modules that `frozen_stages`
    freezes."""
    if not self.frozen_stages:
      return frozenset()
    embedding = {'patch_kernel', 'patch_bias', 'pos_embedding', 'cls_token'}
    if self.registers:
      embedding.add('register_tokens')
    return frozenset(embedding | {f'block_{i}'
                                  for i in range(self.frozen_stages - 1)})


def create(name: str, **kwargs) -> VisionTransformer:
  size, registers = VARIANTS[name]
  width, depth, heads = SIZES[size]
  return VisionTransformer(width=width, depth=depth, heads=heads,
                           registers=registers, **kwargs)


def layer_of(module: str) -> int:
  """Depth of a top-level parameter or module, for layer-wise learning-rate
  decay: the embedding 0, block i i + 1, None for the final norm and head
  (the top)."""
  if module.startswith('block_'):
    return int(module.split('_')[1]) + 1
  return 0 if module in ('patch_kernel', 'patch_bias', *TOKENS) else None


def stages(name: str) -> int:
  """The patch embedding and the blocks."""
  return 1 + SIZES[VARIANTS[name][0]][1]
