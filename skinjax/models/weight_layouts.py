"""Tensor names of other libraries' files -> skinjax's parameter tree.

One Layout per library and architecture family: the tensor that marks it,
what it ignores, and a function from its tensors to {flax path: (array,
source name)}. Torch stores a linear layer's weight (out, in) and a
convolution's (out, in, kh, kw); flax wants (in, out) and (kh, kw, in, out).
"""

import dataclasses
import re
from typing import Callable

import numpy as np

from skinjax.models import convnext
from skinjax.models import vit


class UnknownTensor(ValueError):
  """A tensor name the layout has no place for."""


@dataclasses.dataclass(frozen=True)
class Layout:
  name: str
  family: str  # 'ViT' or 'ConvNeXt'
  marker: str  # a tensor only this layout has (after any prefix)
  convert: Callable  # (tensors, fresh params) -> {flax path: (array, name)}
  ignored: tuple = ()  # regular expressions of tensors with no use here

  def strip(self, tensors: dict) -> dict:
    """The tensors without the prefix a task model adds ('dinov2.',
    'backbone.', 'model.') and without the ignored ones."""
    [prefix] = {n[:-len(self.marker)] for n in tensors
                if n.endswith(self.marker)}
    return {n[len(prefix):]: v for n, v in tensors.items()
            if n.startswith(prefix) and not any(
                re.fullmatch(p, n[len(prefix):]) for p in self.ignored)}


def _linear(value):
  return value.T


def _conv(value):
  return value.transpose(2, 3, 1, 0)


def _positions(antialias: bool):
  """A transform of position embeddings (1, [1 +] grid^2, d) to the
  configured model's grid, resampled as the library that wrote them does
  (vit.resampling_matrix); with no class row (timm's no_embed_class), a zero
  one is added."""
  return lambda value, fresh_params: _resampled_positions(value, fresh_params,
                                                          antialias)


def _resampled_positions(value, fresh_params, antialias):
  rows = value.shape[1]
  if round(rows ** 0.5) ** 2 == rows:
    value = np.concatenate([np.zeros_like(value[:, :1]), value], axis=1)
  own = round((value.shape[1] - 1) ** 0.5)
  target = fresh_params['pos_embedding'].shape
  grid = round((target[1] - 1) ** 0.5)
  patches = vit.resample_grid(value[0, 1:].reshape(own, own, -1), grid, grid,
                             antialias)
  return np.concatenate([value[:, :1], np.asarray(patches).reshape(
      1, grid * grid, -1)], axis=1)


def _renamer(rules):
  """A convert function from (pattern, flax path template, transform)
  rules: the first that matches a name renames it."""
  def convert(tensors, fresh_params):
    out = {}
    for name, value in tensors.items():
      for pattern, target, transform in rules:
        match = re.fullmatch(pattern, name)
        if match:
          break
      else:
        raise UnknownTensor(name)
      for path, array in _expand(target, match, transform(value, fresh_params)):
        out[path] = (array, name)
    return out
  return convert


def _expand(target, match, value):
  """[(flax path, array)]: one per target; a '|'-joined target splits the
  array evenly along its last axis (timm's fused qkv)."""
  targets = target.split('|')
  parts = np.split(value, len(targets), axis=-1) if len(targets) > 1 else [
      value]
  return [(tuple(match.expand(t).split('/')), p)
          for t, p in zip(targets, parts)]


def _plain(transform):
  return lambda value, _: transform(value)


_SAME = _plain(lambda v: v)
_LINEAR = _plain(_linear)

_VIT_BLOCK = r'block_\1/'


def _hf_dinov2(antialias: bool) -> list:
  return [
    (r'embeddings\.cls_token', 'cls_token', _SAME),
    (r'embeddings\.register_tokens', 'register_tokens', _SAME),
    (r'embeddings\.position_embeddings', 'pos_embedding',
     _positions(antialias)),
    (r'embeddings\.patch_embeddings\.projection\.weight', 'patch_kernel',
     _plain(_conv)),
    (r'embeddings\.patch_embeddings\.projection\.bias', 'patch_bias', _SAME),
    (r'encoder\.layer\.(\d+)\.norm([12])\.weight', _VIT_BLOCK + r'norm\2/scale',
     _SAME),
    (r'encoder\.layer\.(\d+)\.norm([12])\.bias', _VIT_BLOCK + r'norm\2/bias',
     _SAME),
    (r'encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.weight',
     _VIT_BLOCK + r'attention/\2/kernel', _LINEAR),
    (r'encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.bias',
     _VIT_BLOCK + r'attention/\2/bias', _SAME),
    (r'encoder\.layer\.(\d+)\.attention\.output\.dense\.weight',
     _VIT_BLOCK + 'attention/out/kernel', _LINEAR),
    (r'encoder\.layer\.(\d+)\.attention\.output\.dense\.bias',
     _VIT_BLOCK + 'attention/out/bias', _SAME),
    (r'encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1',
     _VIT_BLOCK + r'scale\2/gamma', _SAME),
    (r'encoder\.layer\.(\d+)\.mlp\.fc1\.weight', _VIT_BLOCK + 'mlp_in/kernel',
     _LINEAR),
    (r'encoder\.layer\.(\d+)\.mlp\.fc1\.bias', _VIT_BLOCK + 'mlp_in/bias',
     _SAME),
    (r'encoder\.layer\.(\d+)\.mlp\.fc2\.weight', _VIT_BLOCK + 'mlp_out/kernel',
     _LINEAR),
    (r'encoder\.layer\.(\d+)\.mlp\.fc2\.bias', _VIT_BLOCK + 'mlp_out/bias',
     _SAME),
    (r'layernorm\.weight', 'norm/scale', _SAME),
    (r'layernorm\.bias', 'norm/bias', _SAME),
  ]


_TIMM_VIT = [
    (r'cls_token', 'cls_token', _SAME),
    (r'reg_token', 'register_tokens', _SAME),
    (r'pos_embed', 'pos_embedding', _positions(antialias=True)),
    (r'patch_embed\.proj\.weight', 'patch_kernel', _plain(_conv)),
    (r'patch_embed\.proj\.bias', 'patch_bias', _SAME),
    (r'blocks\.(\d+)\.norm([12])\.weight', _VIT_BLOCK + r'norm\2/scale', _SAME),
    (r'blocks\.(\d+)\.norm([12])\.bias', _VIT_BLOCK + r'norm\2/bias', _SAME),
    (r'blocks\.(\d+)\.attn\.qkv\.weight', '|'.join(
        _VIT_BLOCK + f'attention/{p}/kernel'
        for p in ('query', 'key', 'value')),
     _LINEAR),
    (r'blocks\.(\d+)\.attn\.qkv\.bias', '|'.join(
        _VIT_BLOCK + f'attention/{p}/bias' for p in ('query', 'key', 'value')),
     _SAME),
    (r'blocks\.(\d+)\.attn\.proj\.weight', _VIT_BLOCK + 'attention/out/kernel',
     _LINEAR),
    (r'blocks\.(\d+)\.attn\.proj\.bias', _VIT_BLOCK + 'attention/out/bias',
     _SAME),
    (r'blocks\.(\d+)\.ls([12])\.gamma', _VIT_BLOCK + r'scale\2/gamma', _SAME),
    (r'blocks\.(\d+)\.mlp\.fc1\.weight', _VIT_BLOCK + 'mlp_in/kernel', _LINEAR),
    (r'blocks\.(\d+)\.mlp\.fc1\.bias', _VIT_BLOCK + 'mlp_in/bias', _SAME),
    (r'blocks\.(\d+)\.mlp\.fc2\.weight', _VIT_BLOCK + 'mlp_out/kernel',
     _LINEAR),
    (r'blocks\.(\d+)\.mlp\.fc2\.bias', _VIT_BLOCK + 'mlp_out/bias', _SAME),
    (r'norm\.weight', 'norm/scale', _SAME),
    (r'norm\.bias', 'norm/bias', _SAME),
]


def _convnext_rules(names: dict) -> list:
  """ConvNeXt's rules from a library's names for each part: the stem's
  convolution and norm, the downsampling's, a block's, the final norm."""
  block = r'block_\1_\2/'
  rules = [(names['stem_conv'] + r'\.weight', 'stem_conv/kernel',
            _plain(_conv)),
           (names['stem_conv'] + r'\.bias', 'stem_conv/bias', _SAME),
           (names['downsample_conv'] + r'\.weight',
            r'downsample_\1_conv/kernel',
            _plain(_conv)),
           (names['downsample_conv'] + r'\.bias', r'downsample_\1_conv/bias',
            _SAME),
           (names['block'] + r'\.' + names['gamma'], block + 'gamma', _SAME)]
  for part, ours in (('depthwise', 'depthwise'), ('mlp_in', 'mlp_in'),
                     ('mlp_out', 'mlp_out')):
    transform = _plain(_conv) if part == 'depthwise' else _LINEAR
    rules += [(names['block'] + r'\.' + names[part] + r'\.weight',
               block + ours + '/kernel', transform),
              (names['block'] + r'\.' + names[part] + r'\.bias',
               block + ours + '/bias', _SAME)]
  for part, ours in (('stem_norm', 'stem_norm'),
                     ('downsample_norm', r'downsample_\1_norm'),
                     ('block_norm', block + 'norm'), ('norm', 'norm')):
    pattern = (names['block'] + r'\.' + names[part] if part == 'block_norm'
               else names[part])
    rules += [(pattern + r'\.weight', ours + '/scale', _SAME),
              (pattern + r'\.bias', ours + '/bias', _SAME)]
  return rules


_TIMM_CONVNEXT = _convnext_rules({
    'stem_conv': r'stem\.0', 'stem_norm': r'stem\.1',
    'downsample_norm': r'stages\.(\d+)\.downsample\.0',
    'downsample_conv': r'stages\.(\d+)\.downsample\.1',
    'block': r'stages\.(\d+)\.blocks\.(\d+)', 'depthwise': 'conv_dw',
    'block_norm': 'norm', 'mlp_in': r'mlp\.fc1', 'mlp_out': r'mlp\.fc2',
    'gamma': 'gamma', 'norm': r'head\.norm'})
_HF_CONVNEXT = _convnext_rules({
    'stem_conv': r'embeddings\.patch_embeddings',
    'stem_norm': r'embeddings\.layernorm',
    'downsample_norm': r'encoder\.stages\.(\d+)\.downsampling_layer\.0',
    'downsample_conv': r'encoder\.stages\.(\d+)\.downsampling_layer\.1',
    'block': r'encoder\.stages\.(\d+)\.layers\.(\d+)', 'depthwise': 'dwconv',
    'block_norm': 'layernorm', 'mlp_in': 'pwconv1', 'mlp_out': 'pwconv2',
    'gamma': 'layer_scale_parameter', 'norm': 'layernorm'})

# Hugging Face resamples Dinov2Model's position embeddings without
# antialiasing and Dinov2WithRegistersModel's with it (transformers 5.25), as
# timm does every ViT's; the registers' layout is told apart by its tokens.
_HF_IGNORED = (r'embeddings\.mask_token', r'classifier\..*')
LAYOUTS = (
    Layout('Hugging Face Dinov2WithRegistersModel', 'ViT',
           'embeddings.register_tokens', _renamer(_hf_dinov2(True)),
           ignored=_HF_IGNORED),
    Layout('Hugging Face Dinov2Model', 'ViT',
           'embeddings.patch_embeddings.projection.weight',
           _renamer(_hf_dinov2(False)), ignored=_HF_IGNORED),
    Layout('timm VisionTransformer', 'ViT', 'patch_embed.proj.weight',
           _renamer(_TIMM_VIT), ignored=(r'head\..*',)),
    Layout('timm ConvNeXt', 'ConvNeXt', 'stem.0.weight',
           _renamer(_TIMM_CONVNEXT), ignored=(r'head\.fc\..*',)),
    Layout('Hugging Face ConvNextModel', 'ConvNeXt',
           'embeddings.patch_embeddings.weight', _renamer(_HF_CONVNEXT),
           ignored=(r'classifier\..*',)),
)
_FAMILIES = {**{name: 'ViT' for name in vit.VARIANTS},
             **{name: 'ConvNeXt' for name in convnext.VARIANTS}}


def detect(tensors: dict):
  """The layout whose marker tensor the file has, or None."""
  for layout in LAYOUTS:
    if any(name.endswith(layout.marker) for name in tensors):
      return layout
  return None


def family_of(model_name: str) -> str:
  return _FAMILIES.get(model_name, model_name)


def describe() -> list:
  return [f'{layout.name} (marked by {layout.marker})' for layout in LAYOUTS]
