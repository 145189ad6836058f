"""Each convolution of ResNet-18's train step, timed alone: XLA against PyTorch.

Forward, input gradient and kernel gradient of every distinct convolution
shape of ResNet-18 (NHWC), each jitted on its own in jax; the same layer in
PyTorch (channels-last, eager) when it is importable. Shows which layers
make the gap between the two train steps.

  python experiments/benchmarks/conv_layers.py --image_size=128 --batch=32
"""

import argparse
import time

import jax
import jax.numpy as jnp


def resnet18_convs(image_size: int):
  """(input size, in channels, out channels, kernel, stride) of each shape."""
  s = image_size // 4  # after the stem and its max pool
  return [(image_size, 3, 64, 7, 2), (s, 64, 64, 3, 1),
          (s, 64, 128, 3, 2), (s, 64, 128, 1, 2), (s // 2, 128, 128, 3, 1),
          (s // 2, 128, 256, 3, 2), (s // 4, 256, 256, 3, 1),
          (s // 4, 256, 512, 3, 2), (s // 8, 512, 512, 3, 1)]


def milliseconds(fn, repeats: int) -> float:
  fn(), fn()
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - start) / repeats * 1e3


def time_jax(batch, size, cin, cout, k, stride, repeats):
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, cin))
  w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout)) * 0.01
  conv = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (stride, stride), [(k // 2, k // 2)] * 2,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  g = jnp.ones_like(conv(x, w))
  forward = jax.jit(conv)
  grad_x = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
  grad_w = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
  return [milliseconds(lambda: f(*args).block_until_ready(), repeats)
          for f, args in ((forward, (x, w)), (grad_x, (x, w, g)),
                          (grad_w, (x, w, g)))]


def time_torch(torch, batch, size, cin, cout, k, stride, repeats):
  """Forward, then forward + both gradients (PyTorch computes them together)."""
  x = torch.randn(batch, cin, size, size).to(
      memory_format=torch.channels_last).requires_grad_()
  conv = torch.nn.Conv2d(cin, cout, k, stride, k // 2, bias=False).to(
      memory_format=torch.channels_last)
  g = torch.ones_like(conv(x))

  def forward():
    with torch.no_grad():
      conv(x)

  def forward_backward():
    torch.autograd.grad(conv(x), [x, conv.weight], g)
  return milliseconds(forward, repeats), milliseconds(forward_backward, repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--image_size', type=int, default=128)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = None
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}, '
        f'batch {args.batch}, {args.image_size} px; milliseconds' +
        (f'; torch {torch.__version__}, {torch.get_num_threads()} threads'
         if torch else '; torch not installed'))
  print(f'{"layer (size cin>cout kxk/s)":>28} {"fwd":>6} {"dx":>6} {"dw":>6} '
        f'{"sum":>6} | {"torch fwd":>9} {"fwd+dx+dw":>9} {"ratio":>5}')
  for size, cin, cout, k, stride in resnet18_convs(args.image_size):
    times = time_jax(args.batch, size, cin, cout, k, stride, args.repeats)
    line = (f'{size:>3} {cin:>4}>{cout:<4} {k}x{k}/{stride}'.rjust(28) +
            ''.join(f' {t:6.1f}' for t in times) + f' {sum(times):6.1f}')
    if torch is not None:
      fwd, total = time_torch(torch, args.batch, size, cin, cout, k, stride,
                              args.repeats)
      line += f' | {fwd:9.1f} {total:9.1f} {total / sum(times):5.2f}'
    print(line)


if __name__ == '__main__':
  main()
