"""Layers shared by the models."""

from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp


class Conv(nn.Module):
  """2D convolution (NHWC), with the parameters and results of `nn.Conv`.

  On feature maps smaller than the kernel (the 2x2 and 1x1 maps that the
  last stage of a CNN reaches on small images) it is computed as a matmul
  over explicit patches: XLA:CPU's convolution runs such shapes up to 50x
  slower (a 3x3 kernel on 2x2 maps, 512 channels: 3 GFLOP/s, against 170 as
  a matmul on the same 2-core CPU). Everywhere else it is XLA's convolution.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Union[str, Sequence[Sequence[int]]] = 'SAME'
  feature_group_count: int = 1
  use_bias: bool = True
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    in_features = x.shape[-1]
    kernel = self.param(
        'kernel', self.kernel_init,
        (kh, kw, in_features // self.feature_group_count, self.features))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    pads = self._explicit_padding(x.shape[1:3])
    if self.feature_group_count == 1 and min(x.shape[1:3]) < min(kh, kw):
      y = self._patch_matmul(x, kernel, pads)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, tuple(self.strides), pads,
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
          feature_group_count=self.feature_group_count)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,)).astype(
          self.dtype)
    return y

  def _explicit_padding(self, spatial):
    if not isinstance(self.padding, str):
      return [tuple(p) for p in self.padding]
    if self.padding == 'VALID':
      return [(0, 0), (0, 0)]
    pads = []  # 'SAME', as XLA computes it
    for size, k, s in zip(spatial, self.kernel_size, self.strides):
      total = max((-(-size // s) - 1) * s + k - size, 0)
      pads.append((total // 2, total - total // 2))
    return pads

  def _patch_matmul(self, x, kernel, pads):
    kh, kw = self.kernel_size
    sh, sw = self.strides
    x = jnp.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    out_h = (x.shape[1] - kh) // sh + 1
    out_w = (x.shape[2] - kw) // sw + 1
    patches = jnp.concatenate(
        [x[:, i:i + (out_h - 1) * sh + 1:sh, j:j + (out_w - 1) * sw + 1:sw]
         for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ kernel.reshape(-1, self.features)
