"""Pretrained weights from the files the field shares them in.

`model.init_from=/path/to/FILE.safetensors` (the `safetensors` package: no
code runs on load) or a `.pth` state dict (read without torch,
models.torch_checkpoint), in the naming of the library that wrote it:
Hugging Face transformers or timm (skinjax.models.weight_layouts says which
names each family takes). The layout is recognised from the tensor names,
every tensor is renamed into flax's tree and its shape checked against the
configured model, and anything that does not fit is a one-line error naming
the file, the first tensor and the layout expected. Nothing is downloaded:
users bring the file (see the README's "Pretrained backbones").
"""

import os

import jax
import numpy as np
from safetensors import SafetensorError
from safetensors import numpy as safetensors_numpy

from skinjax import errors
from skinjax.models import layers
from skinjax.models import torch_checkpoint
from skinjax.models import weight_layouts

SUFFIXES = ('.safetensors', '.pth', '.pt', '.bin')


class WeightFileError(errors.UserError):
  """A weight file that does not fit the configured model; the message names
  the file, the tensor and the layout expected."""


def is_weight_file(path: str) -> bool:
  return path.endswith(SUFFIXES)


def read_tensors(path: str) -> dict:
  """{name: numpy array} of a safetensors file or a torch state dict."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise WeightFileError(f'config.model.init_from={path}: no such file')
  if path.endswith('.safetensors'):
    try:
      return dict(safetensors_numpy.load_file(path))
    except (SafetensorError, ValueError, TypeError, OSError) as e:
      raise WeightFileError(f'{path}: not a readable safetensors file '
                            f'({str(e).splitlines()[0]})') from None
  return torch_checkpoint.load_state_dict(path)


def variables(model_name: str, path: str, fresh: dict) -> dict:
  """{'params', 'batch_stats'} for `fresh`'s model from the weight file at
  `path`: every backbone tensor from the file (the classifier head stays
  fresh), shapes checked."""
  tensors = read_tensors(path)
  layout = weight_layouts.detect(tensors)
  if layout is None:
    raise WeightFileError(
        f'{path}: tensor names of no known layout (first: '
        f'{next(iter(sorted(tensors)), "none")}); expected one of '
        f'{", ".join(weight_layouts.describe())}')
  family = weight_layouts.family_of(model_name)
  if layout.family != family:
    raise WeightFileError(
        f'{path} holds a {layout.name} ({layout.family}) model; '
        f'config.model.name={model_name} is a {family}')
  tensors = layout.strip(tensors)
  try:
    renamed = layout.convert(tensors, fresh['params'])
  except weight_layouts.UnknownTensor as e:
    raise WeightFileError(f'{path}: tensor {e} has no place in layout '
                          f'{layout.name}') from None
  shapes = {name: tuple(value.shape) for name, value in tensors.items()}
  params = _assemble(fresh['params'], renamed, shapes, path, layout.name)
  return {'params': params, 'batch_stats': fresh.get('batch_stats', {})}


def _assemble(fresh_params: dict, renamed: dict, shapes: dict, path: str,
              layout: str) -> dict:
  """`fresh_params` with each leaf taken from `renamed` ({flax path:
  (array, source tensor name)}): a missing or misshapen tensor raises,
  naming it with its shape in the file (`shapes`)."""
  unused = set(renamed)

  def take(path_keys, value):
    key = tuple(k.key for k in path_keys)
    if key[0] == layers.HEAD:
      return value
    if key not in renamed:
      raise WeightFileError(
          f'{path}: no tensor for {"/".join(key)} of the configured model '
          f'(layout {layout}): is it another size?')
    array, source = renamed[key]
    unused.discard(key)
    if array.shape != value.shape:
      raise WeightFileError(
          f'{path}: tensor {source} of shape {shapes[source]} does not fit '
          f'{"/".join(key)} {tuple(value.shape)} of the configured model '
          f'(layout {layout}): is it another size?')
    return np.asarray(array, np.float32)

  params = jax.tree_util.tree_map_with_path(take, fresh_params)
  if unused:
    _, source = renamed[sorted(unused)[0]]
    raise WeightFileError(f'{path}: tensor {source} has no place in the '
                          f'configured model (layout {layout}): is it '
                          'another depth?')
  return params
