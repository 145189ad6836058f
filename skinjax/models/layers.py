"""Layers shared by the models."""

from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp


class Conv(nn.Module):
  """2D convolution (NHWC), with the parameters and results of `nn.Conv`.

  Two shapes avoid XLA:CPU's convolution, which is slow on them (measured
  forward + backward on a 2-core CPU):
  * maps smaller than the kernel (the 2x2 and 1x1 maps the last stage of a
    CNN reaches on small images) are a matmul over explicit patches: a 3x3
    kernel on 2x2 maps with 512 channels runs at 170 GFLOP/s that way,
    against 3 in XLA's convolution;
  * depthwise convolutions (one filter per channel) are a sum of shifted,
    channel-scaled copies of the input, which XLA fuses into one loop: 3 to
    12x faster than its grouped convolution on EfficientNet's shapes.
  Everywhere else it is XLA's convolution.
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
    depthwise = self.feature_group_count == in_features == self.features
    if depthwise:
      y = sum(window * kernel[i, j, 0]
              for (i, j), window in self._windows(x, pads))
    elif self.feature_group_count == 1 and min(x.shape[1:3]) < min(kh, kw):
      y = jnp.concatenate([w for _, w in self._windows(x, pads)], axis=-1)
      y = y @ kernel.reshape(-1, self.features)
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

  def _windows(self, x, pads):
    """((i, j), the input seen by kernel tap (i, j) at every output)."""
    kh, kw = self.kernel_size
    sh, sw = self.strides
    x = jnp.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    out_h = (x.shape[1] - kh) // sh + 1
    out_w = (x.shape[2] - kw) // sw + 1
    return [((i, j), x[:, i:i + (out_h - 1) * sh + 1:sh,
                       j:j + (out_w - 1) * sw + 1:sw])
            for i in range(kh) for j in range(kw)]


class DropPath(nn.Module):
  """Stochastic depth: drops a residual branch for whole examples."""
  rate: float

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if deterministic or self.rate == 0:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng('dropout'), keep,
                                (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


FEATURES = 'features'


def expose_features(module: nn.Module, x):
  """Marks `x` as the model's last convolutional feature map, for Grad-CAM:
  sown into 'intermediates' and, when a 'perturbations' collection is
  passed, offset by it so that jax.grad reaches it. A no-op otherwise (and
  never part of the variables that `init` returns)."""
  if not module.is_initializing():
    x = module.perturb(FEATURES, x)
  module.sow('intermediates', FEATURES, x)
  return x
