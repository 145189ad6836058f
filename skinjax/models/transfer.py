"""Starting weights other than random: ImageNet, a weight file, or any
skinjax checkpoint.

`model.init_from` names the source: 'imagenet' (EfficientNet-Lite), a
`.safetensors` or `.pth` file in timm or Hugging Face naming
(models.weight_files), or a run folder. Every parameter and BatchNorm statistic
whose path and shape match is taken from it; the classifier head is kept
freshly initialised when its shape differs (another number of classes).
Anything else that does not match is an error naming the first such key:
it means another architecture.
"""

import os

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp

from skinjax import errors
from skinjax.models import layers
from skinjax.models import pretrained
from skinjax.models import weight_files


class InitFromError(errors.UserError):
  """config.model.init_from names no usable weights for this model; the
  message names the path and the variable."""


def initial_variables(model_config, fresh: dict) -> dict:
  """`fresh` ({'params', 'batch_stats'}) overlaid with the configured source."""
  if model_config.init_from == 'imagenet':
    source = pretrained.imagenet_variables(model_config.name)
    where = f'ImageNet weights of {model_config.name}'
  elif weight_files.is_weight_file(model_config.init_from):
    source = weight_files.variables(model_config.name,
                                    model_config.init_from, fresh)
    where = model_config.init_from
  else:
    source = checkpoint_variables(model_config.init_from)
    where = model_config.init_from
  return merge(fresh, source, where)


def checkpoint_variables(path: str) -> dict:
  """{'params', 'batch_stats'} of a skinjax run folder (its latest
  checkpoint), a checkpoints/ folder, or one step's folder."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(os.path.join(path, 'checkpoints')):
    path = os.path.join(path, 'checkpoints')
  if not os.path.isdir(os.path.join(path, 'state')):
    steps = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(
        path) else []
    if not steps:
      raise InitFromError(f'config.model.init_from={path}: no skinjax '
                          'checkpoint there')
    path = os.path.join(path, str(max(steps)))
  state = _restore_on_one_device(os.path.join(path, 'state'))
  return {'params': state['params'],
          'batch_stats': state.get('batch_stats', {})}


def _restore_on_one_device(path: str):
  """The saved tree, every array on this process's first device, whatever
  devices wrote it: a run trained on a multi-GPU node can seed a fine-tune on
  a laptop (Orbax, left to itself, insists on the saving topology)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  saved = ocp.handlers.StandardCheckpointHandler().metadata(epath.Path(path))
  target = jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                        sharding=device), saved)
  return ocp.StandardCheckpointer().restore(path, target)


def merge(fresh: dict, source: dict, where: str) -> dict:
  """`fresh` with every matching leaf replaced by `source`'s."""
  flat_source = {jax.tree_util.keystr(k): v for k, v in
                 jax.tree_util.tree_leaves_with_path(source)}

  def take(path, value):
    key = jax.tree_util.keystr(path)
    is_head = path[1].key == layers.HEAD
    if key not in flat_source:
      if is_head:
        return value
      raise InitFromError(f'{where} has no {key}: is it another '
                          'architecture?')
    loaded = np.asarray(flat_source[key])
    if loaded.shape != value.shape:
      if is_head:  # another number of classes: keep the fresh head
        return value
      raise InitFromError(f'{where}: {key} has shape {loaded.shape}, the '
                          f'model {value.shape}')
    return loaded.astype(value.dtype)

  return jax.tree_util.tree_map_with_path(take, fresh)
