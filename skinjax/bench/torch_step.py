"""The same ResNet train step in PyTorch (eager, channels-last), side by side.

torch is an optional extra (`pip install -e .[bench]`) and torchvision is not
needed: the ResNet v1.5 here has skinjax's layout (stride on the 3x3 conv,
zero-initialised last BatchNorm of each block, uint8 NHWC images normalised
inside the model) and the step does what skinjax's does: label-smoothed
cross-entropy and SGD with Nesterov momentum and weight decay, with
configs/default.py's values. bfloat16 is autocast over float32 weights, as
skinjax's bfloat16 compute over float32 parameters.

  python -m skinjax.bench.torch_step '{"model_name": "resnet18", ...}'
"""

import json
import statistics
import time

from absl import app
import torch
from torch import nn

from skinjax.bench import hardware


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
    self.head = nn.Linear(in_features, num_classes)
    self.register_buffer(
        'mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
    self.register_buffer(
        'std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

  def forward(self, images):
    # NHWC -> NCHW is a view with channels-last strides, kept by float().
    x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
    x = self.blocks(self.stem(x.contiguous(memory_format=torch.channels_last)))
    return self.head(x.mean(dim=(2, 3)))


MODELS = {
    'resnet18': lambda **kw: ResNet(BasicBlock, (2, 2, 2, 2), **kw),
    'resnet50': lambda **kw: ResNet(BottleneckBlock, (3, 4, 6, 3), **kw),
}


def measure(model_name: str, width: int, image_size: int, dtype: str,
            batch_size: int, num_classes: int, num_steps: int,
            warmup_steps: int) -> dict:
  """Step time and memory of one setting on a synthetic batch."""
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  model = MODELS[model_name](width=width, num_classes=num_classes).to(
      device, memory_format=torch.channels_last)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                              nesterov=True, weight_decay=1e-4)
  loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
  generator = torch.Generator().manual_seed(0)
  images = torch.randint(0, 256, (batch_size, image_size, image_size, 3),
                         dtype=torch.uint8, generator=generator).to(device)
  labels = torch.randint(0, num_classes, (batch_size,),
                         generator=generator).to(device)

  def step():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device, torch.bfloat16, enabled=dtype == 'bfloat16'):
      loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    if device == 'cuda':
      torch.cuda.synchronize()
    return loss

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
