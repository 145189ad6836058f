"""Layers shared by the models, and the names every model gives its parts."""

import functools
from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp


# config.model.layer_forms: 'cpu' takes the forms below that were measured
# faster on XLA:CPU than its own convolution and pooling gradient; 'xla'
# takes XLA's native ops (cuDNN's on GPU); 'auto' is 'cpu' on a CPU backend,
# else 'xla'. Both give the same outputs, gradients and parameters.
LAYER_FORMS = ('auto', 'cpu', 'xla')


def cpu_forms(layer_forms: str) -> bool:
  """Whether the CPU forms apply: the one place the choice is made."""
  if layer_forms == 'auto':
    return jax.default_backend() == 'cpu'
  return layer_forms == 'cpu'


class Conv(nn.Module):
  """2D convolution (NHWC), with the parameters and results of `nn.Conv`.

  With the CPU forms (`layer_forms`), two shapes avoid XLA:CPU's
  convolution, which is slow on them (measured forward + backward on a
  2-core CPU):
  * maps smaller than the kernel (the 2x2 and 1x1 maps the last stage of a
    CNN reaches on small images) are a matmul over explicit patches: a 3x3
    kernel on 2x2 maps with 512 channels runs at 170 GFLOP/s that way,
    against 3 in XLA's convolution;
  * depthwise convolutions (one filter per channel) are a sum of shifted,
    channel-scaled copies of the input, which XLA fuses into one loop: 3 to
    12x faster than its grouped convolution on EfficientNet's shapes.
  Everywhere else, and with the XLA forms, it is XLA's convolution.
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
  layer_forms: str = 'auto'

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    in_features = x.shape[-1]
    kernel = self.param(
        'kernel', self.kernel_init,
        (kh, kw, in_features // self.feature_group_count, self.features))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    pads = self._explicit_padding(x.shape[1:3])
    cpu = cpu_forms(self.layer_forms)
    depthwise = self.feature_group_count == in_features == self.features
    if cpu and depthwise:
      y = sum(window * kernel[i, j, 0]
              for (i, j), window in self._windows(x, pads))
    elif (cpu and self.feature_group_count == 1
          and min(x.shape[1:3]) < min(kh, kw)):
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
    return same_padding(spatial, self.kernel_size, self.strides)

  def _windows(self, x, pads):
    return windows(jnp.pad(x, [(0, 0), *pads, (0, 0)]), self.kernel_size,
                   self.strides)


def same_padding(spatial, window, strides):
  """'SAME' padding (low, high) per spatial axis, as XLA computes it."""
  pads = []
  for size, k, s in zip(spatial, window, strides):
    total = max((-(-size // s) - 1) * s + k - size, 0)
    pads.append((total // 2, total - total // 2))
  return pads


def windows(x_padded, window, strides):
  """((i, j), the input seen by window tap (i, j) at every output)."""
  kh, kw = window
  sh, sw = strides
  out_h = (x_padded.shape[1] - kh) // sh + 1
  out_w = (x_padded.shape[2] - kw) // sw + 1
  return [((i, j), x_padded[:, i:i + (out_h - 1) * sh + 1:sh,
                            j:j + (out_w - 1) * sw + 1:sw])
          for i in range(kh) for j in range(kw)]


def max_pool(x, window: Sequence[int], strides: Sequence[int],
             layer_forms: str = 'auto'):
  """`nn.max_pool(x, window, strides, 'SAME')`; with the CPU forms, with a
  gradient XLA:CPU runs fast (_cpu_max_pool)."""
  if cpu_forms(layer_forms):
    return _cpu_max_pool(x, tuple(window), tuple(strides))
  return nn.max_pool(x, window_shape=tuple(window), strides=tuple(strides),
                     padding='SAME')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _cpu_max_pool(x, window: Sequence[int], strides: Sequence[int]):
  """max_pool with the same gradient (each output's gradient goes to the
  first maximum of its window) as jax's own, which XLA:CPU lowers
  (select-and-scatter) to a
  variadic reduce-window over index arrays: 136 ms for ResNet's 3x3/2 pool
  of a 32x64x64x64 map on a 2-core CPU. Here it is the index of each
  window's maximum, then for each stride phase a sum of shifted copies: 30 ms.
  """
  return _max_pool_fwd(x, window, strides)[0]


def _pad_for_pool(x, window, strides):
  pads = same_padding(x.shape[1:3], window, strides)
  return jnp.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-jnp.inf), pads


def _max_pool_fwd(x, window, strides):
  x_padded, _ = _pad_for_pool(x, window, strides)
  y = jax.lax.reduce_window(x_padded, -jnp.inf, jax.lax.max,
                            (1, *window, 1), (1, *strides, 1), 'VALID')
  return y, (x, y)


def _max_pool_bwd(window, strides, residuals, g):
  x, y = residuals
  x_padded, pads = _pad_for_pool(x, window, strides)
  taps = windows(x_padded, window, strides)
  # Which tap holds each window's first maximum.
  first = jnp.full(y.shape, len(taps), jnp.int32)
  for t in reversed(range(len(taps))):
    first = jnp.where(taps[t][1] == y, t, first)
  # Padded input row r = o * stride + i: tap row i feeds phase i % stride,
  # at block o + i // stride. Each phase is a sum of shifted copies of g.
  (sh, sw), (oh, ow) = strides, y.shape[1:3]
  nh, nw = -(-x_padded.shape[1] // sh), -(-x_padded.shape[2] // sw)
  phases = [[jnp.zeros((x.shape[0], nh, nw, x.shape[3]), g.dtype)
             for _ in range(sw)] for _ in range(sh)]
  for t, ((i, j), _) in enumerate(taps):
    di, dj = i // sh, j // sw
    phases[i % sh][j % sw] += jnp.pad(
        jnp.where(first == t, g, 0),
        [(0, 0), (di, nh - oh - di), (dj, nw - ow - dj), (0, 0)])
  dx = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)
  dx = dx.reshape(x.shape[0], nh * sh, nw * sw, x.shape[3])
  (top, _), (left, _) = pads
  return (dx[:, top:top + x.shape[1], left:left + x.shape[2]],)


_cpu_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


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


# The classifier Dense layer of every model: the optimiser gives it its own
# learning rate and transfer learning re-initialises it.
HEAD = 'head'
FEATURES = 'features'
# The pooled features the head reads (sown into 'intermediates'): what a
# feature-space distance to the training data is measured on.
PENULTIMATE = 'penultimate'


# ImageNet's channel statistics on [0, 255]: how timm's and Hugging Face's
# ViTs and ConvNeXts were trained to see photos (DINOv2 included).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def standardise(images, mean_rgb, std_rgb, dtype):
  """Images in [0, 255] (uint8 or float) standardised per channel, in the
  compute dtype: the normalisation travels with the weights it belongs to."""
  x = (images.astype(jnp.float32) - jnp.asarray(mean_rgb)) / jnp.asarray(
      std_rgb)
  return x.astype(dtype)


def he_conv(dtype, layer_forms: str):
  """Conv without bias (a BatchNorm follows), He-initialised on fan-out."""
  return functools.partial(Conv, use_bias=False, dtype=dtype,
                           layer_forms=layer_forms,
                           kernel_init=nn.initializers.variance_scaling(
                               2.0, 'fan_out', 'normal'))


def classifier(module: nn.Module, x, num_classes: int, dropout_rate: float,
               train: bool):
  """The end of every CNN, called in its compact __call__: the feature map
  exposed to Grad-CAM, global average pooling, then `head`."""
  x = expose_features(module, x)
  return head(module, jnp.mean(x, axis=(1, 2)), num_classes, dropout_rate,
              train)


def head(module: nn.Module, pooled, num_classes: int, dropout_rate: float,
         train: bool):
  """The end of every model: the pooled features sown as PENULTIMATE (kept
  only when 'intermediates' is mutable, so training never stores them),
  dropout, and float32 logits (so the softmax and the loss stay exact under
  bf16) from HEAD."""
  module.sow('intermediates', PENULTIMATE, pooled.astype(jnp.float32))
  x = nn.Dropout(dropout_rate, deterministic=not train)(pooled)
  return nn.Dense(num_classes, dtype=jnp.float32, name=HEAD)(x)


def freeze_stages(x, stage: int, frozen_stages: int, train: bool):
  """The output of stage `stage` (0: the stem), cut from the gradient when it
  is the last of the `frozen_stages` frozen ones: autodiff then never
  reaches the stages before, so XLA computes no backward pass through them.
  (Their BatchNorm statistics stay fixed and their update is zeroed in the
  train step: the model's frozen_modules.)"""
  if train and stage + 1 == frozen_stages:
    return jax.lax.stop_gradient(x)
  return x


def expose_features(module: nn.Module, x):
  """Marks `x` as the model's last convolutional feature map, for Grad-CAM:
  sown into 'intermediates' and, when a 'perturbations' collection is
  passed, offset by it so that jax.grad reaches it. A no-op otherwise (and
  never part of the variables that `init` returns)."""
  if not module.is_initializing():
    x = module.perturb(FEATURES, x)
  module.sow('intermediates', FEATURES, x)
  return x


def stage_norm(train: bool, frozen_stages: int, freeze_batch_stats: bool,
               dtype, *, momentum: float, epsilon: float):
  """norm(stage) -> the BatchNorm of a layer in `stage`: it normalises with
  its running averages in evaluation, in the frozen stages
  (freeze_stages) and with frozen statistics, else with the batch's (under
  jit with a batch sharded over devices, the global batch's: no axis_name
  is needed for synchronised BatchNorm)."""
  def norm(stage: int):
    trains = train and stage >= frozen_stages
    return functools.partial(
        nn.BatchNorm, use_running_average=not trains or freeze_batch_stats,
        momentum=momentum, epsilon=epsilon, dtype=dtype)
  return norm


def backbone_start(module, images, train: bool, *, momentum: float,
                   epsilon: float) -> tuple:
  """(the standardised images, the conv factory, stage_norm) of a backbone
  module from its fields (mean_rgb, std_rgb, dtype, layer_forms,
  frozen_stages, freeze_batch_stats), with its BatchNorm's momentum and
  epsilon."""
  return (standardise(images, module.mean_rgb, module.std_rgb, module.dtype),
          he_conv(module.dtype, module.layer_forms),
          stage_norm(train, module.frozen_stages, module.freeze_batch_stats,
                     module.dtype, momentum=momentum, epsilon=epsilon))
