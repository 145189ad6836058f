"""The same train step in PyTorch (eager, channels-last), side by side.

torch is an optional extra (`pip install -e .[bench]`); torchvision and timm
are not needed. The models here have skinjax's layouts and take uint8 NHWC
images, normalised inside the model:
* ResNet v1.5: stride on the 3x3 conv, zero-initialised last BatchNorm of
  each block;
* EfficientNet-Lite0/1/2, built from skinjax.models.efficientnet_lite.blocks
  (passed in as data: this process imports no jax): ReLU6, no SE, BatchNorm
  momentum 0.99 and epsilon 1e-3, XLA's 'SAME' padding, drop path and
  dropout. Its modules are named as the PyTorch port whose ImageNet weights
  skinjax converts, so those weights load into it: tests/test_bench.py
  checks that it computes skinjax's logits.
The step does what skinjax's does, with the config's values: label-smoothed
cross-entropy and config.optimizer's SGD (Nesterov momentum) or AdamW, with
weight decay on kernels only. bfloat16 is autocast over float32 weights, with
float32 logits, as skinjax's bfloat16 compute over float32 parameters.

  python -m skinjax.bench.torch_step '{"model_name": "resnet18", ...}'
"""

import functools
import json
import statistics
import time

from absl import app
import torch
from torch import nn
from torch.nn import functional as F

from skinjax.bench import hardware


class Standardise(nn.Module):
  """uint8 NHWC images -> float32 NCHW, standardised, channels-last."""

  def __init__(self, mean, std):
    super().__init__()
    # Out of the state dict, which then loads the ImageNet port's strictly.
    self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1),
                         persistent=False)
    self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1),
                         persistent=False)

  def forward(self, images):
    # NHWC -> NCHW is a view with channels-last strides, kept by float().
    x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
    return x.contiguous(memory_format=torch.channels_last)


class Head(nn.Linear):
  """Global average pooling, dropout and float32 logits (autocast off), as
  skinjax's layers.classifier."""

  def __init__(self, in_features, num_classes, dropout_rate=0.0):
    super().__init__(in_features, num_classes)
    self.dropout = nn.Dropout(dropout_rate)

  def forward(self, x):
    x = self.dropout(x.mean(dim=(2, 3)))
    with torch.autocast(x.device.type, enabled=False):
      return super().forward(x.float())


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, in_features, features, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(in_features, features, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(features)
    self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(features)
    nn.init.zeros_(self.bn2.weight)
    self.proj = _projection(in_features, features, stride)

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    return torch.relu(self.bn2(self.conv2(y)) + self.proj(x))


class BottleneckBlock(nn.Module):
  expansion = 4

  def __init__(self, in_features, features, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(in_features, features, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(features)
    self.conv2 = nn.Conv2d(features, features, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(features)
    self.conv3 = nn.Conv2d(features, features * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(features * 4)
    nn.init.zeros_(self.bn3.weight)
    self.proj = _projection(in_features, features * 4, stride)

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = torch.relu(self.bn2(self.conv2(y)))
    return torch.relu(self.bn3(self.conv3(y)) + self.proj(x))


def _projection(in_features, features, stride):
  if in_features == features and stride == 1:
    return nn.Identity()
  return nn.Sequential(nn.Conv2d(in_features, features, 1, stride, bias=False),
                       nn.BatchNorm2d(features))


class ResNet(nn.Module):
  """skinjax.models.resnet.ResNet in torch; takes uint8 NHWC images."""

  def __init__(self, block, stage_sizes, width, num_classes):
    super().__init__()
    self.standardise = Standardise([0.485 * 255, 0.456 * 255, 0.406 * 255],
                                   [0.229 * 255, 0.224 * 255, 0.225 * 255])
    self.stem = nn.Sequential(
        nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
        nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    blocks, in_features = [], width
    for i, num_blocks in enumerate(stage_sizes):
      for j in range(num_blocks):
        blocks.append(block(in_features, width * 2**i,
                            2 if i > 0 and j == 0 else 1))
        in_features = width * 2**i * block.expansion
    self.blocks = nn.Sequential(*blocks)
    self.head = Head(in_features, num_classes)

  def forward(self, images):
    return self.head(self.blocks(self.stem(self.standardise(images))))


class SameConv2d(nn.Conv2d):
  """Bias-free conv padded as XLA's 'SAME' (skinjax.models.layers.same_padding,
  which this process cannot import): a strided conv on an even-sized map
  pads one more at the bottom and right, where torch's symmetric padding
  would shift every window. Only such uneven padding costs a copy."""

  def __init__(self, in_features, features, kernel_size, stride=1, groups=1):
    super().__init__(in_features, features, kernel_size, stride,
                     groups=groups, bias=False)
    # skinjax's layers.he_conv.
    nn.init.kaiming_normal_(self.weight, mode='fan_out', nonlinearity='relu')

  def forward(self, x):
    pads = []
    for size, k, s in zip(x.shape[2:], self.kernel_size, self.stride):
      total = max((-(-size // s) - 1) * s + k - size, 0)
      pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    if (top, left) != (bottom, right):
      x, top, left = F.pad(x, (left, right, top, bottom)), 0, 0
    return F.conv2d(x, self.weight, None, self.stride, (top, left), 1,
                    self.groups)


# flax's BatchNorm momentum 0.99 keeps 0.99 of the running statistics.
_lite_norm = functools.partial(nn.BatchNorm2d, momentum=0.01, eps=1e-3)


def drop_path(x, rate: float, training: bool):
  """skinjax's layers.DropPath: a residual branch dropped for whole examples."""
  if not training or rate == 0:
    return x
  keep = 1.0 - rate
  mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype,
                     device=x.device).bernoulli_(keep)
  return x * mask / keep


class MBConv(nn.Module):
  """skinjax's MBConv: expand 1x1, depthwise kxk, project 1x1 (no SE)."""

  def __init__(self, kernel_size, strides, expand_ratio, in_features,
               out_features, drop_path_rate):
    super().__init__()
    hidden = in_features * expand_ratio
    self.expand = expand_ratio != 1
    if self.expand:
      self._expand_conv = SameConv2d(in_features, hidden, 1)
      self._bn0 = _lite_norm(hidden)
    self._depthwise_conv = SameConv2d(hidden, hidden, kernel_size, strides,
                                      groups=hidden)
    self._bn1 = _lite_norm(hidden)
    self._project_conv = SameConv2d(hidden, out_features, 1)
    self._bn2 = _lite_norm(out_features)
    self.residual = strides == 1 and in_features == out_features
    self.drop_path_rate = drop_path_rate

  def forward(self, x):
    y = x
    if self.expand:
      y = F.relu6(self._bn0(self._expand_conv(y)))
    y = F.relu6(self._bn1(self._depthwise_conv(y)))
    y = self._bn2(self._project_conv(y))
    if self.residual:
      y = drop_path(y, self.drop_path_rate, self.training) + x
    return y


class EfficientNetLite(nn.Module):
  """skinjax.models.efficientnet_lite.EfficientNetLite in torch, from its
  blocks (dicts of efficientnet_lite.Block's fields); takes uint8 NHWC
  images."""

  def __init__(self, blocks, num_classes, dropout_rate, drop_path_rate):
    super().__init__()
    self.standardise = Standardise([127.0] * 3, [128.0] * 3)
    self._conv_stem = SameConv2d(3, 32, 3, 2)  # stem not scaled
    self._bn0 = _lite_norm(32)
    self._blocks = nn.ModuleList(
        MBConv(**{k: v for k, v in block.items() if k != 'stage'},
               drop_path_rate=drop_path_rate * i / len(blocks))
        for i, block in enumerate(blocks))
    self._conv_head = SameConv2d(blocks[-1]['out_features'], 1280, 1)
    self._bn1 = _lite_norm(1280)
    self._fc = Head(1280, num_classes, dropout_rate)

  def forward(self, images):
    x = F.relu6(self._bn0(self._conv_stem(self.standardise(images))))
    for block in self._blocks:
      x = block(x)
    return self._fc(F.relu6(self._bn1(self._conv_head(x))))


# model_name -> (num_classes, **model) -> module; `model` is the ResNet width,
# or the Lite blocks and regularisation.
MODELS = {
    'resnet18': lambda **kw: ResNet(BasicBlock, (2, 2, 2, 2), **kw),
    'resnet50': lambda **kw: ResNet(BottleneckBlock, (3, 4, 6, 3), **kw),
    **{f'efficientnet_lite{i}': EfficientNetLite for i in range(3)},
}


def create_optimizer(model, name, learning_rate, weight_decay, momentum,
                     nesterov, b1, b2, eps, grad_clip_norm,
                     backbone_learning_rate_factor, **schedule):
  """config.optimizer's SGD or AdamW with weight decay on kernels only, as
  skinjax.training.optimizer; at the peak learning rate, as the schedule
  (`schedule`) costs a step nothing."""
  del schedule
  if grad_clip_norm or backbone_learning_rate_factor != 1:
    raise NotImplementedError('the torch step has no gradient clipping and '
                              'no backbone learning rate factor')
  params = list(model.parameters())
  groups = [{'params': [p for p in params if p.ndim > 1],
             'weight_decay': weight_decay},
            {'params': [p for p in params if p.ndim <= 1],
             'weight_decay': 0.0}]
  if name == 'sgd':
    return torch.optim.SGD(groups, lr=learning_rate, momentum=momentum,
                           nesterov=nesterov)
  return torch.optim.AdamW(groups, lr=learning_rate, betas=(b1, b2), eps=eps)


def measure(model_name: str, model: dict, image_size: int, dtype: str,
            batch_size: int, num_classes: int, optimizer: dict,
            label_smoothing: float, num_steps: int,
            warmup_steps: int) -> dict:
  """Step time and memory of one setting on a synthetic batch; `optimizer`
  is config.optimizer, `model` MODELS' arguments."""
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  net = MODELS[model_name](num_classes=num_classes, **model).to(
      device, memory_format=torch.channels_last)
  tx = create_optimizer(net, **optimizer)
  loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
  generator = torch.Generator().manual_seed(0)
  images = torch.randint(0, 256, (batch_size, image_size, image_size, 3),
                         dtype=torch.uint8, generator=generator).to(device)
  labels = torch.randint(0, num_classes, (batch_size,),
                         generator=generator).to(device)

  def step():
    tx.zero_grad(set_to_none=True)
    with torch.autocast(device, torch.bfloat16, enabled=dtype == 'bfloat16'):
      loss = loss_fn(net(images), labels)
    loss.backward()
    tx.step()
    if device == 'cuda':
      torch.cuda.synchronize()
    return loss.detach()

  start = time.perf_counter()
  step()
  first_step_seconds = time.perf_counter() - start
  for _ in range(warmup_steps):
    step()
  rss_was_reset = hardware.reset_peak_rss()
  if device == 'cuda':
    torch.cuda.reset_peak_memory_stats()
  times = []
  for _ in range(num_steps):
    start = time.perf_counter()
    loss = step()
    times.append(time.perf_counter() - start)
  if device == 'cuda':
    memory = (torch.cuda.max_memory_allocated(), 'torch.cuda.max_memory_allocated')
  else:
    memory = hardware.peak_rss(rss_was_reset)
  step_seconds = statistics.fmean(times)
  return {
      'device': device,
      'num_threads': torch.get_num_threads(),
      'first_step_seconds': first_step_seconds,
      'step_seconds': step_seconds,
      'step_seconds_median': statistics.median(times),
      'images_per_second': batch_size / step_seconds,
      'peak_memory_bytes': memory[0],
      'memory_source': memory[1],
      'loss': float(loss),
  }


def main(argv):
  print(json.dumps(measure(**json.loads(argv[1]))))


if __name__ == '__main__':
  app.run(main)
