"""Writes the parity fixtures of tests/fixtures/backbones/ (run once, by hand).

Why: skinjax's JAX backbones (DINOv2 ViTs with and without registers,
ConvNeXt) must load the weights users download from timm and Hugging Face
transformers and compute what those libraries compute. skinjax's own test
venv never imports torch, timm or transformers, so the reference numbers are
made here, once, from TINY models with random weights, and checked in: each
case is a `<case>.safetensors` (the model's state_dict in the library's own
naming, as a downloaded file has it) and a `<case>.npz` (float32 inputs and
the library's float32 outputs for them). The config that rebuilds each model
is JSON under "config" in both (safetensors metadata; a 0-d string array in
the npz). README.md beside the fixtures is written too: versions, the
state_dict key patterns, and how each library interpolates position
embeddings (quoted from the installed source).

Needs a networked machine (for pip) and a throwaway venv with torch, timm,
transformers, safetensors and numpy; nothing downloads weights. Regenerate
with:

  python3 -m venv /tmp/refvenv
  /tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
  /tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
      timm transformers safetensors numpy
  /tmp/refvenv/bin/python tests/backbone_references.py

(--out DIR writes elsewhere; the default is tests/fixtures/backbones/.)
The seeds fix the inputs and the added noise; the init draws come from each
library's own init code, so other versions may give other (equally good)
weights, and the files are byte-for-byte the same run to run.
"""

import argparse
import collections
import inspect
import json
import os
import re
import sys
import tempfile

import numpy as np
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
import transformers
from timm.layers import pos_embed as timm_pos_embed
from timm.models import convnext as timm_convnext
from timm.models import vision_transformer as timm_vit

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_OUT = os.path.join(_HERE, 'fixtures', 'backbones')
_COMMAND = 'python tests/backbone_references.py'
_BATCH = 2
_NOISE = 0.1  # added (times randn) to every parameter after init

VIT_SIZES = (12, 20, 8)  # grids 3 (native), 5 (upsampled), 2 (downsampled)
CONVNEXT_SIZES = (32, 48, 64)


def versions() -> dict:
  return {'torch': torch.__version__, 'timm': timm.__version__,
          'transformers': transformers.__version__,
          'safetensors': safetensors.__version__, 'numpy': np.__version__}


def pixels(size: int) -> torch.Tensor:
  """NCHW float32 input, already normalised: fed straight to the model."""
  generator = torch.Generator().manual_seed(1000 + size)
  return torch.randn(_BATCH, 3, size, size, generator=generator,
                     dtype=torch.float32)


def perturb(model: torch.nn.Module, seed: int) -> None:
  """Adds 0.1 * randn to every parameter (so no LayerNorm weight, layer
  scale or token is trivially 1 or 0), then puts the model in eval mode."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for _, param in sorted(model.named_parameters()):
      param.add_(_NOISE * torch.randn(param.shape, generator=generator,
                                      dtype=torch.float32))
  model.eval()
  buffers = [name for name, _ in model.named_buffers()]
  state = model.state_dict()
  params = dict(model.named_parameters())
  not_params = [k for k in state if k not in params]
  if not_params:
    print(f'  note: state_dict entries that are not parameters (not '
          f'perturbed): {not_params}; buffers: {buffers}')
  for key, value in state.items():
    assert value.dtype == torch.float32, (key, value.dtype)


def hf_state_dict(model, example: torch.Tensor):
  """The tensors `model.save_pretrained` writes, under its key names, and
  the config.json it writes.

  The file's names can differ from the in-memory `model.state_dict()` ones
  (transformers 5 renames some modules and converts back on save); the file
  is what users download, so it is what the fixture holds. A model reloaded
  from it with `from_pretrained` must reproduce the outputs exactly.
  """
  with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    files = sorted(f for f in os.listdir(tmp) if f.endswith('.safetensors'))
    assert files == ['model.safetensors'], files
    saved = safetensors.torch.load_file(os.path.join(tmp, files[0]))
    with open(os.path.join(tmp, 'config.json')) as f:
      hf_config = json.load(f)
    reloaded = type(model).from_pretrained(tmp, attn_implementation='eager')
    reloaded.eval()
    with torch.no_grad():
      want = model(pixel_values=example)
      got = reloaded(pixel_values=example)
    for name in ('last_hidden_state', 'pooler_output'):
      assert torch.equal(getattr(want, name), getattr(got, name)), name
  own = model.state_dict()
  for key in set(saved) & set(own):
    assert torch.equal(saved[key], own[key]), key
  renamed = None
  if set(saved) != set(own):
    renamed = {'in_file': generic_keys(set(saved) - set(own)),
               'in_memory': generic_keys(set(own) - set(saved))}
    print(f"  note: save_pretrained names differ from state_dict(): file "
          f"{renamed['in_file']} vs in memory {renamed['in_memory']}")
  return saved, hf_config, renamed


def generic_keys(keys) -> list:
  return sorted({re.sub(r'\.\d+\.', '.N.', k) for k in keys})


def hf_model(cls, config):
  """`cls(config)` with eager attention (plain float32 matmuls)."""
  config._attn_implementation = 'eager'
  model = cls(config)
  return model


# Cases: each returns (model, state_dict, config, sizes, outputs(x) -> dict).

def case_hf_dinov2(registers: bool):
  if registers:
    if not hasattr(transformers, 'Dinov2WithRegistersModel'):
      return None
    config_cls = transformers.Dinov2WithRegistersConfig
    model_cls = transformers.Dinov2WithRegistersModel
    extra = {'num_register_tokens': 2}
  else:
    config_cls = transformers.Dinov2Config
    model_cls = transformers.Dinov2Model
    extra = {}
  # Dinov2Config has no intermediate_size: the MLP width is
  # int(hidden_size * mlp_ratio) = 128.
  kwargs = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                mlp_ratio=4, patch_size=4, image_size=12, layerscale_value=1.0,
                layer_norm_eps=1e-6, hidden_act='gelu', qkv_bias=True,
                use_swiglu_ffn=False, **extra)
  torch.manual_seed(11 if registers else 10)
  model = hf_model(model_cls, config_cls(**kwargs))
  perturb(model, seed=111 if registers else 110)
  state, hf_config, renamed = hf_state_dict(model, pixels(12))
  mlp = model.encoder.layer[0].mlp.fc1.out_features
  assert mlp == 128, mlp
  config = dict(
      library='transformers', cls=model_cls.__name__, renamed_on_save=renamed,
      **dict(kwargs, num_register_tokens=extra.get('num_register_tokens', 0)),
      intermediate_size=mlp, pos_grid=3, class_token=True,
      pos_embed_covers_class_token=True,
      pos_embed_interpolation=dict(
          mode='bicubic', align_corners=False,
          antialias=registers, size='(H // patch, W // patch)',
          offset=0.0, skipped_when='token count matches and H == W'),
      outputs=dict(last_hidden_state='final LayerNorm over all tokens '
                   '[cls, registers..., patches...]',
                   pooler_output='last_hidden_state[:, 0]'),
      hf_config=hf_config)

  def outputs(x):
    size = x.shape[-1]
    out = model(pixel_values=x)
    tokens = model.embeddings.patch_embeddings(x).shape[1] + 1
    dummy = torch.zeros(1, tokens, 32)
    pos = model.embeddings.interpolate_pos_encoding(dummy, size, size)
    return {f'last_hidden_state_{size}': out.last_hidden_state,
            f'pooler_output_{size}': out.pooler_output,
            f'pos_embed_{size}': pos}
  return model, state, config, VIT_SIZES, outputs


def timm_vit_kwargs(registers: bool) -> dict:
  """vit_small_patch14_dinov2 / vit_small_patch14_reg4_dinov2 shrunk.

  timm's definitions: patch_size=14, embed_dim=384, depth=12, num_heads=6,
  init_values=1e-5 (+ reg_tokens=4, no_embed_class=True for reg4); the rest
  is VisionTransformer's defaults (LayerNorm eps 1e-6, qkv_bias, exact GELU,
  class token, global_pool 'token', mlp_ratio 4). dynamic_img_size is not
  set by timm's definitions (a user passes it to run at other sizes).
  """
  kwargs = dict(img_size=12, patch_size=4, embed_dim=32, depth=2, num_heads=2,
                mlp_ratio=4.0, init_values=1.0, class_token=True,
                global_pool='token', num_classes=0, dynamic_img_size=True,
                qkv_bias=True)
  if registers:
    kwargs.update(reg_tokens=2, no_embed_class=True)
  return kwargs


def case_timm_dinov2(registers: bool):
  kwargs = timm_vit_kwargs(registers)
  torch.manual_seed(21 if registers else 20)
  model = timm_vit.VisionTransformer(**kwargs)
  perturb(model, seed=121 if registers else 120)
  norm = model.norm
  assert isinstance(norm, torch.nn.LayerNorm) and norm.eps == 1e-6
  assert isinstance(model.blocks[0].mlp.act, torch.nn.GELU)
  assert model.blocks[0].mlp.act.approximate == 'none'
  assert isinstance(model.fc_norm, torch.nn.Identity)
  config = dict(
      library='timm', cls='timm.models.vision_transformer.VisionTransformer',
      **dict(kwargs, reg_tokens=kwargs.get('reg_tokens', 0),
             no_embed_class=kwargs.get('no_embed_class', False)),
      layer_norm_eps=norm.eps, act='gelu (exact, erf)', pos_grid=3,
      mlp_hidden=model.blocks[0].mlp.fc1.out_features,
      mirrors='vit_small_patch14_reg4_dinov2' if registers
      else 'vit_small_patch14_dinov2',
      pos_embed_covers_class_token=not kwargs.get('no_embed_class', False),
      pos_embed_interpolation=dict(
          function='timm.layers.resample_abs_pos_embed', mode='bicubic',
          align_corners=False, antialias=True,
          size='(H // patch, W // patch)', offset=0.0,
          skipped_when='grid equals patch_embed.grid_size'),
      outputs=dict(forward_features='all tokens [cls, registers..., '
                   'patches...] after the final norm',
                   pre_logits='forward_head(x, pre_logits=True): the cls '
                   'token (global_pool token, no fc_norm)'))

  def outputs(x):
    size = x.shape[-1]
    feats = model.forward_features(x)
    grid = size // 4
    pos = timm_pos_embed.resample_abs_pos_embed(
        model.pos_embed, new_size=(grid, grid),
        old_size=model.patch_embed.grid_size,
        num_prefix_tokens=0 if model.no_embed_class
        else model.num_prefix_tokens)
    return {f'forward_features_{size}': feats,
            f'pre_logits_{size}': model.forward_head(feats, pre_logits=True),
            f'pos_embed_{size}': pos}
  return model, model.state_dict(), config, VIT_SIZES, outputs


def case_timm_convnext():
  # convnext_tiny: depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), everything
  # else ConvNeXt's defaults (ls_init_value 1e-6, patch stem 4, kernel 7,
  # conv_mlp False, head_norm_first False, LayerNorm eps 1e-6, exact GELU).
  kwargs = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), num_classes=0,
                ls_init_value=1.0)
  torch.manual_seed(30)
  model = timm_convnext.ConvNeXt(**kwargs)
  perturb(model, seed=130)
  assert model.head.norm.eps == 1e-6
  config = dict(
      library='timm', cls='timm.models.convnext.ConvNeXt', **kwargs,
      mirrors='convnext_tiny', patch_size=4, kernel_size=7, conv_mlp=False,
      head_norm_first=False, layer_norm_eps=1e-6, act='gelu (exact, erf)',
      outputs=dict(forward_features='NCHW map after the last stage (before '
                   'the head; norm_pre is Identity)',
                   pre_logits='forward_head(x, pre_logits=True): global avg '
                   'pool, head.norm (LayerNorm eps 1e-6), flatten'))

  def outputs(x):
    size = x.shape[-1]
    feats = model.forward_features(x)
    return {f'forward_features_{size}': feats,
            f'pre_logits_{size}': model.forward_head(feats, pre_logits=True)}
  return model, model.state_dict(), config, CONVNEXT_SIZES, outputs


def case_hf_convnext():
  kwargs = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1],
                layer_scale_init_value=1.0)
  torch.manual_seed(40)
  model = transformers.ConvNextModel(transformers.ConvNextConfig(**kwargs))
  perturb(model, seed=140)
  state, hf_config, renamed = hf_state_dict(model, pixels(32))
  config = dict(
      library='transformers', cls='ConvNextModel', renamed_on_save=renamed,
      **kwargs, patch_size=hf_config['patch_size'], kernel_size=7,
      block_layer_norm_eps=1e-6,
      final_layer_norm_eps=hf_config['layer_norm_eps'],
      hidden_act=hf_config['hidden_act'],
      outputs=dict(last_hidden_state='NCHW map after the last stage',
                   pooler_output='layernorm(last_hidden_state.mean([-2, -1]))'
                   ' with eps config.layer_norm_eps'),
      hf_config=hf_config)

  def outputs(x):
    size = x.shape[-1]
    out = model(pixel_values=x)
    return {f'last_hidden_state_{size}': out.last_hidden_state,
            f'pooler_output_{size}': out.pooler_output}
  return model, state, config, CONVNEXT_SIZES, outputs


CASES = {
    'hf_dinov2': lambda: case_hf_dinov2(registers=False),
    'hf_dinov2_registers': lambda: case_hf_dinov2(registers=True),
    'timm_dinov2': lambda: case_timm_dinov2(registers=False),
    'timm_dinov2_registers': lambda: case_timm_dinov2(registers=True),
    'timm_convnext': case_timm_convnext,
    'hf_convnext': case_hf_convnext,
}


def key_patterns(state: dict) -> list:
  """One line per key pattern, layer/block/stage numbers replaced by N."""
  shapes = collections.OrderedDict()
  for key, value in state.items():
    pattern = re.sub(r'\b(layer|layers|blocks|stages)\.\d+', r'\1.N', key)
    shapes.setdefault(pattern, [])
    shape = tuple(value.shape)
    if shape not in shapes[pattern]:
      shapes[pattern].append(shape)
  return [f'{pattern}  ' + ' '.join(str(list(s)) for s in found)
          for pattern, found in shapes.items()]


def write_safetensors(path: str, tensors: dict, metadata: dict) -> None:
  """safetensors.torch.save, with the JSON header rewritten with sorted keys
  (safetensors writes its metadata map in a random order, so the same
  tensors would give different bytes run to run)."""
  data = safetensors.torch.save(tensors, metadata=metadata)
  size = int.from_bytes(data[:8], 'little')
  header = json.loads(data[8:8 + size])
  text = json.dumps(header, sort_keys=True, separators=(',', ':')).encode()
  text += b' ' * (-len(text) % 8)
  with open(path, 'wb') as f:
    f.write(len(text).to_bytes(8, 'little') + text + data[8 + size:])
  loaded = safetensors.torch.load_file(path)
  assert set(loaded) == set(tensors)
  for key, value in tensors.items():
    assert torch.equal(loaded[key], value), key


def write_case(name: str, out_dir: str, vers: dict) -> dict:
  built = CASES[name]()
  if built is None:
    print(f'{name}: skipped (transformers {transformers.__version__} has no '
          'Dinov2WithRegistersModel)')
    return None
  model, state, config, sizes, outputs = built
  config = dict(config, versions=vers)
  renamed = config.pop('renamed_on_save', None)
  config_json = json.dumps(config, sort_keys=True)
  tensors = {k: v.detach().to(torch.float32).contiguous().clone()
             for k, v in state.items()}
  write_safetensors(os.path.join(out_dir, f'{name}.safetensors'), tensors,
                    {'config': config_json, 'format': 'pt'})
  arrays = {'config': np.array(config_json)}
  with torch.no_grad():
    for size in sizes:
      x = pixels(size)
      arrays[f'pixels_{size}'] = x.numpy()
      for key, value in outputs(x).items():
        assert value.dtype == torch.float32, (key, value.dtype)
        assert torch.isfinite(value).all(), key
        arrays[key] = value.numpy().astype(np.float32)
  np.savez_compressed(os.path.join(out_dir, f'{name}.npz'), **arrays)
  print(f'{name}: {len(tensors)} tensors; ' + ', '.join(
      f'{k} {list(v.shape)}' for k, v in arrays.items() if k != 'config'))
  return {'name': name, 'config': config, 'renamed': renamed,
          'patterns': key_patterns(tensors),
          'arrays': {k: list(v.shape) for k, v in arrays.items()
                     if k != 'config'}}


def snippet(obj, pattern: str, before: int, after: int) -> str:
  """Lines of obj's installed source around the first line matching pattern."""
  lines, start = inspect.getsourcelines(obj)
  for i, line in enumerate(lines):
    if re.search(pattern, line):
      chunk = lines[max(0, i - before):i + after + 1]
      first = start + max(0, i - before)
      path = inspect.getsourcefile(obj)
      path = path[path.rfind('site-packages/') + len('site-packages/'):]
      return (f'{path}, lines {first}-{first + len(chunk) - 1}:\n\n```python\n'
              + ''.join(chunk).rstrip() + '\n```\n')
  raise ValueError(f'{pattern!r} not in {obj}')


# Reference kernels in numpy: what torch's F.interpolate(mode='bicubic',
# align_corners=False) computes along one axis, as an (out, in) matrix.

def _keys(x, a):
  x = np.abs(x)
  return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                  np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a,
                           0.0))


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
  """antialias=False: Keys a=-0.75; source (o + 0.5) * in/out - 0.5; the 4
  taps clamped to the edge (replicate padding); no widening on downscale."""
  m = np.zeros((n_out, n_in))
  for o in range(n_out):
    src = (o + 0.5) * n_in / n_out - 0.5
    base = np.floor(src)
    for k in range(-1, 3):
      m[o, int(min(max(base + k, 0), n_in - 1))] += _keys(src - base - k,
                                                           -0.75)
  return m


def bicubic_aa_matrix(n_in: int, n_out: int) -> np.ndarray:
  """antialias=True (PIL's): Keys a=-0.5; centre (o + 0.5) * in/out; support
  widened by max(1, in/out); taps outside the input dropped and the weights
  renormalised to sum 1 (so not the same as antialias=False even when
  upsampling)."""
  scale = n_in / n_out
  support = max(scale, 1.0)
  m = np.zeros((n_out, n_in))
  for o in range(n_out):
    centre = (o + 0.5) * scale
    lo = int(max(np.floor(centre - 2 * support), 0))
    hi = int(min(np.ceil(centre + 2 * support), n_in))
    w = _keys((np.arange(lo, hi) + 0.5 - centre) / support, -0.5)
    m[o, lo:hi] = w / w.sum()
  return m


def interpolation_checks() -> list:
  """Max error of the numpy kernels above against torch, on random grids."""
  rows = []
  rng = np.random.default_rng(0)
  for n_in, n_out in ((3, 5), (3, 2), (37, 16), (37, 40)):
    x = rng.standard_normal((1, 4, n_in, n_in)).astype(np.float32)
    for antialias, fn in ((False, bicubic_matrix), (True, bicubic_aa_matrix)):
      y = F.interpolate(torch.from_numpy(x), size=(n_out, n_out),
                        mode='bicubic', align_corners=False,
                        antialias=antialias).numpy()
      m = fn(n_in, n_out)
      ref = np.einsum('oi,pj,bcij->bcop', m, m, x.astype(np.float64))
      other = F.interpolate(torch.from_numpy(x), size=(n_out, n_out),
                            mode='bicubic', align_corners=False,
                            antialias=not antialias).numpy()
      rows.append((n_in, n_out, antialias, float(np.abs(ref - y).max()),
                   float(np.abs(other - y).max())))
  return rows


def hf_to_timm_vit(hf: dict, registers: bool) -> dict:
  """An HF Dinov2(WithRegisters) file's tensors under timm's names (what
  timm's _convert_dinov2 does to the original DINOv2 checkpoints)."""
  out = {'patch_embed.proj.weight':
         hf['embeddings.patch_embeddings.projection.weight'],
         'patch_embed.proj.bias':
         hf['embeddings.patch_embeddings.projection.bias'],
         'norm.weight': hf['layernorm.weight'],
         'norm.bias': hf['layernorm.bias']}
  pos = hf['embeddings.position_embeddings']
  if registers:
    out['cls_token'] = hf['embeddings.cls_token'] + pos[:, :1]
    out['reg_token'] = hf['embeddings.register_tokens']
    out['pos_embed'] = pos[:, 1:]
  else:
    out['cls_token'] = hf['embeddings.cls_token']
    out['pos_embed'] = pos
  layers = {int(k.split('.')[2]) for k in hf if k.startswith('encoder.layer.')}
  for i in sorted(layers):
    h, t = f'encoder.layer.{i}.', f'blocks.{i}.'
    att = h + 'attention.attention.'
    for kind in ('weight', 'bias'):
      out[t + f'attn.qkv.{kind}'] = torch.cat(
          [hf[att + f'{n}.{kind}'] for n in ('query', 'key', 'value')])
      out[t + f'attn.proj.{kind}'] = hf[h + f'attention.output.dense.{kind}']
      for n in ('norm1', 'norm2', 'mlp.fc1', 'mlp.fc2'):
        out[t + f'{n}.{kind}'] = hf[h + f'{n}.{kind}']
    out[t + 'ls1.gamma'] = hf[h + 'layer_scale1.lambda1']
    out[t + 'ls2.gamma'] = hf[h + 'layer_scale2.lambda1']
  return out


def cross_checks(out_dir: str) -> list:
  """The HF DINOv2 fixtures run through timm's VisionTransformer (weights
  renamed as above): max |difference| of the final tokens per size."""
  rows = []
  for registers in (False, True):
    name = 'hf_dinov2_registers' if registers else 'hf_dinov2'
    path = os.path.join(out_dir, f'{name}.safetensors')
    if not os.path.exists(path):
      continue
    hf = safetensors.torch.load_file(path)
    model = timm_vit.VisionTransformer(**timm_vit_kwargs(registers))
    model.load_state_dict(hf_to_timm_vit(hf, registers))
    model.eval()
    arrays = np.load(os.path.join(out_dir, f'{name}.npz'))
    for size in VIT_SIZES:
      with torch.no_grad():
        got = model.forward_features(
            torch.from_numpy(arrays[f'pixels_{size}'])).numpy()
      want = arrays[f'last_hidden_state_{size}']
      rows.append((name, size, float(np.abs(got - want).max())))
  return rows


def readme(results: list, vers: dict, out_dir: str) -> str:
  out = []
  w = out.append
  w('# Backbone parity fixtures\n')
  w('Made by `tests/backbone_references.py` (read its docstring) from TINY '
    'models with random weights (fixed seeds; 0.1 * randn added to every '
    'parameter after init), in eval mode, in float32. Not part of the test '
    "venv: it needs torch, timm and transformers. Regenerate with:\n")
  w('```sh\npython3 -m venv /tmp/refvenv\n'
    '/tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1\n'
    '/tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 '
    'timm transformers safetensors numpy\n'
    f'/tmp/refvenv/bin/{_COMMAND}\n```\n')
  w('Versions used for the files here: ' + ', '.join(
      f'{k} {v}' for k, v in vers.items()) + '.\n')
  w('Each case: `<case>.safetensors` holds the state_dict in the library\'s '
    'own naming (transformers: the keys `save_pretrained` writes for the bare '
    'model, no `dinov2.`/`convnext.` prefix; timm: `model.state_dict()`), '
    'float32, with the config JSON under the metadata key "config". '
    '`<case>.npz` holds `config` (the same JSON, a 0-d str array: '
    '`str(npz["config"])`), `pixels_<H>` (batch 2, NCHW, already normalised, '
    'fed straight to the model) and the outputs for each H. The ViT cases '
    'also hold `pos_embed_<H>`: the position embedding the library adds at '
    'that size (after interpolation), to test interpolation alone.\n')
  w('| case | class | sizes H=W | outputs |\n| --- | --- | --- | --- |')
  for r in results:
    names = sorted({re.sub(r'_\d+$', '', k) for k in r['arrays']} - {'pixels'})
    sizes = sorted({int(k.rsplit('_', 1)[1]) for k in r['arrays']})
    w(f"| {r['name']} | {r['config']['cls']} | {', '.join(map(str, sizes))} "
      f"| {', '.join(names)} |")
  w('')
  w('## Shapes\n')
  for r in results:
    w(f"- {r['name']}: " + ', '.join(f'`{k}` {v}'
                                     for k, v in r['arrays'].items()))
  w('')
  w('## State dict keys (layer/block/stage numbers shown as N)\n')
  for r in results:
    cfg = {k: v for k, v in r['config'].items()
           if k not in ('hf_config', 'versions', 'outputs',
                        'pos_embed_interpolation')}
    w(f"### {r['name']}\n")
    w(f'Config: `{json.dumps(cfg, sort_keys=True)}`\n')
    w('```')
    out.extend(r['patterns'])
    w('```\n')
    if r['renamed']:
      w('In memory (transformers %s) `model.state_dict()` names these '
        'differently; `save_pretrained` writes the names above (as the Hub '
        'files have them) and `from_pretrained` maps them back: file %s, in '
        'memory %s.\n' % (vers['transformers'], r['renamed']['in_file'],
                          r['renamed']['in_memory']))
  w('## Other details a loader must mirror\n')
  w('- HF ConvNextModel: the blocks\' and downsampling LayerNorms use eps '
    '1e-6, the final `layernorm` (the pooler) uses config.layer_norm_eps, '
    'default 1e-12; pooler_output = layernorm(mean over H, W). timm ConvNeXt: '
    'all LayerNorms eps 1e-6; pre_logits = head.norm(avg pool). Hub files '
    'such as facebook/convnext-tiny-224 are ConvNextForImageClassification: '
    'the same keys under `convnext.` plus `classifier.*`.')
  w('- HF Dinov2: `embeddings.mask_token` is in the file but unused without '
    'bool_masked_pos. Dinov2Config has no intermediate_size: the MLP width is '
    'int(hidden_size * mlp_ratio). The pooler is the cls token after the '
    'final LayerNorm (no dense layer).')
  w('- timm ViT: `pos_embed_<H>` of timm_dinov2_registers has no prefix rows '
    '(no_embed_class); of timm_dinov2 and both HF cases it starts with the '
    'cls row. pre_logits is the cls token after `norm` (fc_norm is Identity '
    "for global_pool='token'). timm's dinov2 definitions do not set "
    'dynamic_img_size (these fixtures do, to test other sizes).')
  w('- ViTs: attention softmax(q k^T / sqrt(head_dim)) v with biased q, k, '
    'v; pre-norm blocks x + ls1 * attn(norm1(x)), x + ls2 * mlp(norm2(x)). '
    'GELU is the exact (erf) one in all six cases.\n')
  w('## Position-embedding interpolation (installed source)\n')
  from transformers.models.dinov2 import modeling_dinov2
  w('### transformers Dinov2Model (no antialias)\n')
  w('Token grid `H // patch` by `W // patch` via `size=` (no scale_factor, no '
    '+0.1 offset), bicubic, align_corners=False, antialias NOT set (False); '
    'the cls position is kept as is. Skipped (the stored embedding used as '
    'is) when the patch count equals the stored one and H == W.\n')
  w(snippet(modeling_dinov2.Dinov2Embeddings.interpolate_pos_encoding,
            r'num_patches == num_positions', 3, 21))
  try:
    from transformers.models.dinov2_with_registers import (
        modeling_dinov2_with_registers as regs)
  except ImportError:
    regs = None
  if regs is not None:
    emb = regs.Dinov2WithRegistersEmbeddings
    w('### transformers Dinov2WithRegistersModel (antialias=True)\n')
    w('Same as Dinov2 except `antialias=True`. Registers: the cls token is '
      'prepended, the position embedding (cls + patches, no register '
      'positions) added, THEN the register tokens are inserted between cls '
      'and the patches, without any position embedding. Token order '
      '[cls, reg..., patches...].\n')
    w(snippet(emb.interpolate_pos_encoding, r'nn\.functional\.interpolate',
              2, 6))
    w(snippet(emb.forward, r'cls_tokens = ', 0, 8))
  w('### timm VisionTransformer (dynamic_img_size=True): '
    'resample_abs_pos_embed\n')
  w('Called from `_pos_embed` with `new_size=(H // patch, W // patch)`, '
    '`old_size=patch_embed.grid_size` and the defaults '
    "`interpolation='bicubic', antialias=True, align_corners=None` (False): "
    'size-based, no offset. The first `num_prefix_tokens` entries (0 when '
    'no_embed_class) are kept as is. Returned unchanged when the grid equals '
    'the stored one. Without dynamic_img_size timm does not interpolate at '
    'run time (the input must be img_size).\n')
  w(snippet(timm_pos_embed.resample_abs_pos_embed, r'if num_prefix_tokens:',
            0, 16))
  w('### timm VisionTransformer._pos_embed: cls/register tokens\n')
  w('no_embed_class=False (vit_small_patch14_dinov2): pos_embed has '
    'num_prefix_tokens + grid^2 rows (1 + grid^2 here); [cls, reg...] are '
    'concatenated first and then pos_embed is added to all tokens; when '
    'resampled, the first num_prefix_tokens rows are kept as they are. '
    'no_embed_class=True (the reg4 dinov2 models): pos_embed has grid^2 rows, '
    'added to the patches only, then [cls, reg..., patches] concatenated: '
    'cls and registers get no position embedding. timm converts the '
    "original DINOv2-reg checkpoints by folding pos_embed[:, 0] into "
    'cls_token (`_convert_dinov2`), so a timm reg4 cls_token already '
    'includes its position, unlike the HF registers file where '
    '`embeddings.position_embeddings[:, 0]` is the cls position.\n')
  w(snippet(timm_vit.VisionTransformer._pos_embed, r'if self.no_embed_class:',
            0, 12))
  w(snippet(timm_vit._convert_dinov2, r"if 'register_tokens' in", 0, 4))
  w('### HF DINOv2 files through timm (this run)\n')
  w('The HF fixtures renamed to timm\'s keys (`hf_to_timm_vit` in the '
    'script: query/key/value concatenated into qkv; for registers the cls '
    'position folded into cls_token, reg_token = register_tokens, pos_embed = '
    'position_embeddings[:, 1:]) and run by timm (dynamic_img_size=True, '
    'no_embed_class for registers): max |timm forward_features - HF '
    'last_hidden_state|. Equal at the native grid; away from it only '
    'Dinov2Model (no antialias) differs from timm (antialias):\n')
  w('| HF case | H=W | max abs diff |\n| --- | --- | --- |')
  for name, size, diff in cross_checks(out_dir):
    w(f'| {name} | {size} | {diff:.1e} |')
  w('')
  w('### What torch computes (checked against torch in this run)\n')
  w('`F.interpolate(mode="bicubic", align_corners=False)` along each axis is '
    'a fixed (out, in) matrix:\n')
  w('- antialias=False (HF Dinov2): Keys cubic with a=-0.75, source '
    'coordinate (o + 0.5) * in/out - 0.5, the 4 taps clamped to the edge; '
    'no kernel widening when downsampling. `jax.image.resize` has no mode '
    'that matches this: build the matrix (tests/backbone_references.py '
    '`bicubic_matrix`).')
  w('- antialias=True (timm, HF Dinov2WithRegisters): PIL-style Keys cubic '
    'with a=-0.5, centre (o + 0.5) * in/out, support widened by '
    'max(1, in/out), taps outside the input dropped and the weights '
    'renormalised (`bicubic_aa_matrix`). This differs from antialias=False '
    'when upsampling too (different a and edge handling). '
    "`jax.image.resize(x, shape, 'cubic', antialias=True)` (jax 0.10.2) "
    'matched torch antialias=True to 6e-7 on 3->5, 3->2, 37->16, 37->40 '
    '(checked by hand, not by this script).\n')
  w('| in -> out | antialias | numpy kernel vs torch | torch AA vs non-AA |')
  w('| --- | --- | --- | --- |')
  for n_in, n_out, aa, err, other in interpolation_checks():
    w(f'| {n_in} -> {n_out} | {aa} | {err:.1e} | {other:.2f} |')
  w('')
  return '\n'.join(out) + '\n'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default=_DEFAULT_OUT)
  parser.add_argument('--cases', nargs='*', default=list(CASES))
  args = parser.parse_args(argv)
  torch.set_num_threads(min(2, os.cpu_count() or 1))
  torch.use_deterministic_algorithms(True)
  os.makedirs(args.out, exist_ok=True)
  vers = versions()
  print('versions:', vers)
  results = [r for r in (write_case(name, args.out, vers)
                         for name in args.cases) if r is not None]
  with open(os.path.join(args.out, 'README.md'), 'w') as f:
    f.write(readme(results, vers, args.out))
  for name in sorted(os.listdir(args.out)):
    size = os.path.getsize(os.path.join(args.out, name))
    print(f'{name}: {size} bytes')


if __name__ == '__main__':
  sys.exit(main())
