"""The ViT and ConvNeXt families against the libraries whose files they read.

Each fixture in tests/fixtures/backbones was written once by
tests/backbone_references.py: a tiny model of the reference library (timm or
transformers) with random weights, its state dict as safetensors, and its
outputs on random pixels at three sizes. Here skinjax's loader reads the
file into the flax model and must reproduce those outputs within 1e-4.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from skinjax.config import defaults
from skinjax.models import convnext
from skinjax.models import layers
from skinjax.models import vit
from skinjax.models import weight_files
from skinjax.training import optimizer

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'backbones')
VIT_CASES = {  # case: (name of the tokens, of the pooled class token)
    'hf_dinov2': ('last_hidden_state', 'pooler_output'),
    'hf_dinov2_registers': ('last_hidden_state', 'pooler_output'),
    'timm_dinov2': ('forward_features', 'pre_logits'),
    'timm_dinov2_registers': ('forward_features', 'pre_logits'),
}
CONVNEXT_CASES = {
    'timm_convnext': ('forward_features', 'pre_logits'),
    'hf_convnext': ('last_hidden_state', 'pooler_output'),
}


def _reference(case):
  with np.load(os.path.join(FIXTURES, case + '.npz')) as npz:
    arrays = dict(npz)
  return json.loads(str(arrays.pop('config'))), arrays


def _tiny_model(case, config, num_classes=3):
  """The flax twin of the fixture's tiny model, fed pixels already
  normalised (mean 0, std 1)."""
  common = dict(num_classes=num_classes, mean_rgb=(0., 0., 0.),
                std_rgb=(1., 1., 1.))
  if case in CONVNEXT_CASES:
    return convnext.ConvNeXt(
        depths=tuple(config['depths']),
        widths=tuple(config.get('dims') or config['hidden_sizes']), **common)
  registers = config.get('reg_tokens', config.get('num_register_tokens', 0))
  width = config.get('embed_dim', config.get('hidden_size'))
  heads = config.get('num_heads', config.get('num_attention_heads'))
  return vit.VisionTransformer(
      width=width, depth=config.get('depth', config.get('num_hidden_layers')),
      heads=heads, patch_size=config['patch_size'], registers=registers,
      **common)


def _load(model, path, size, name='vit_small_patch14_dinov2'):
  images = jnp.zeros((1, size, size, 3))
  fresh = jax.jit(lambda rng: model.init(rng, images, train=False))(
      jax.random.PRNGKey(0))
  return weight_files.variables(name, path, fresh)


def _intermediates(model, variables, pixels_nchw):
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False,
                                           mutable=['intermediates']))
  _, state = apply(variables, jnp.asarray(pixels_nchw.transpose(0, 2, 3, 1)))
  found = state['intermediates']
  return (np.asarray(found[layers.FEATURES][0]),
          np.asarray(found[layers.PENULTIMATE][0]))


# One case per ViT code path in the default tier (Hugging Face without and
# timm with antialiasing and registers; ConvNeXt's first compilation is a
# quarter-minute, so the slow tier has its cases), at one size that resamples the
# position embeddings (20 px: a 5x5 grid from 3x3) or the largest map; the
# slow tier checks the other cases, and every case at all three sizes (each
# size is a compilation).
_SLOW = ('timm_dinov2', 'hf_dinov2_registers', 'timm_convnext',
         'hf_convnext')
_DEFAULT_SIZES = (20, 64)


def _cases(cases):
  return [pytest.param(c, marks=pytest.mark.slow) if c in _SLOW else c
          for c in sorted(cases)]


@pytest.fixture(params=['one', pytest.param('all', marks=pytest.mark.slow)])
def sizes(request):
  """Which of a fixture's sizes to check: one in the default tier, all in
  the slow one."""
  return lambda found: [s for s in found if request.param == 'all' or
                        s in _DEFAULT_SIZES]


@pytest.mark.parametrize('case', _cases(VIT_CASES))
def test_vit_matches_its_library_at_every_size(case, sizes):
  config, reference = _reference(case)
  model = _tiny_model(case, config)
  tokens_name, pooled_name = VIT_CASES[case]
  path = os.path.join(FIXTURES, case + '.safetensors')
  found = sorted(int(k.split('_')[-1]) for k in reference
                 if k.startswith('pixels_'))
  assert len(found) == 3
  for size in sizes(found):
    # Loaded for this size: the file's 3x3 grid of position embeddings is
    # resampled as the library does at this size.
    variables = _load(model, path, size)
    patches, pooled = _intermediates(model, variables,
                                     reference[f'pixels_{size}'])
    tokens = reference[f'{tokens_name}_{size}']
    skip = 1 + model.registers
    np.testing.assert_allclose(
        patches.reshape(tokens.shape[0], -1, model.width), tokens[:, skip:],
        atol=1e-4, err_msg=f'{case} patch tokens at {size} px')
    np.testing.assert_allclose(pooled[:, :model.width], tokens[:, 0],
                               atol=1e-4, err_msg=f'{case} class token')
    np.testing.assert_allclose(pooled[:, :model.width],
                               reference[f'{pooled_name}_{size}'], atol=1e-4)
    np.testing.assert_allclose(pooled[:, model.width:],
                               tokens[:, skip:].mean(1), atol=1e-4)


@pytest.mark.parametrize('case', sorted(VIT_CASES))
def test_position_embeddings_resample_as_the_library_does(case):
  """Loaded at the file's own grid, the model resamples at run time (a
  photo of another size than it was configured for) as the library does."""
  config, reference = _reference(case)
  model = _tiny_model(case, config)
  native = config['pos_grid'] * config['patch_size']
  params = _load(model, os.path.join(FIXTURES, case + '.safetensors'),
                 native)['params']
  own = params['pos_embedding'][0, 1:].reshape(config['pos_grid'],
                                               config['pos_grid'], -1)
  antialias = case != 'hf_dinov2'
  for size in (8, 20):
    expected = reference[f'pos_embed_{size}'][0]
    expected = expected[-(size // config['patch_size']) ** 2:]
    got = vit.resample_grid(own, size // 4, size // 4, antialias)
    np.testing.assert_allclose(np.asarray(got).reshape(expected.shape),
                               expected, atol=1e-5, err_msg=f'{size} px')


@pytest.mark.parametrize('case', _cases(CONVNEXT_CASES))
def test_convnext_matches_its_library_at_every_size(case, sizes):
  config, reference = _reference(case)
  model = _tiny_model(case, config)
  maps_name, pooled_name = CONVNEXT_CASES[case]
  variables = _load(model, os.path.join(FIXTURES, case + '.safetensors'), 32,
                    'convnext_tiny')
  for size in sizes((32, 48, 64)):
    features, pooled = _intermediates(model, variables,
                                      reference[f'pixels_{size}'])
    np.testing.assert_allclose(
        features, reference[f'{maps_name}_{size}'].transpose(0, 2, 3, 1),
        atol=1e-4, err_msg=f'{case} last map at {size} px')
    np.testing.assert_allclose(pooled, reference[f'{pooled_name}_{size}'],
                               atol=1e-4, err_msg=f'{case} pooled')


def _fresh(model, size):
  """The shapes of `model`'s variables: all the loader checks against."""
  return jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))


def _write(path, tensors):
  safetensors_numpy.save_file(tensors, str(path))
  return str(path)


def test_files_that_do_not_fit_get_one_line_naming_file_tensor_layout(
    tmp_path):
  config, _ = _reference('hf_dinov2')
  model = _tiny_model('hf_dinov2', config)
  fresh = _fresh(model, 12)
  good = dict(safetensors_numpy.load_file(
      os.path.join(FIXTURES, 'hf_dinov2.safetensors')))

  def refused(tensors, name='vit_small_patch14_dinov2', file='w.safetensors'):
    path = _write(tmp_path / file, tensors)
    with pytest.raises(weight_files.WeightFileError) as error:
      weight_files.variables(name, path, fresh)
    message = str(error.value)
    assert '\n' not in message and path in message, message
    return message

  wide = dict(good, **{'encoder.layer.1.mlp.fc1.weight': np.zeros(
      (64, 32), np.float32)})
  message = refused(wide)
  assert ('encoder.layer.1.mlp.fc1.weight of shape (64, 32) does not fit '
          'block_1/mlp_in/kernel (32, 128)') in message
  assert 'Hugging Face Dinov2Model' in message
  deeper = dict(good, **{'encoder.layer.2.norm1.weight': np.zeros(
      32, np.float32)})
  assert 'encoder.layer.2.norm1.weight has no place' in refused(deeper)
  stranger = dict(good, **{'encoder.layer.0.adapter.weight': np.zeros(
      3, np.float32)})
  assert 'encoder.layer.0.adapter.weight has no place in layout' in refused(
      stranger)
  shallow = {k: v for k, v in good.items() if 'layer.1.' not in k}
  assert 'block_1' in refused(shallow)
  assert 'is a ConvNeXt' in refused(good, name='convnext_tiny')
  assert 'no known layout' in refused({'linear.weight': np.zeros(2)})
  # A file cut short (a copy interrupted) and one that is not safetensors.
  data = (tmp_path / 'w.safetensors').read_bytes()
  (tmp_path / 'cut.safetensors').write_bytes(data[:len(data) // 2])
  (tmp_path / 'text.safetensors').write_text('{"not": "tensors"}')
  for name in ('cut.safetensors', 'text.safetensors', 'none.safetensors'):
    with pytest.raises(weight_files.WeightFileError, match=name):
      weight_files.variables('vit_small_patch14_dinov2',
                             str(tmp_path / name), fresh)


def test_prefixed_task_models_load_and_their_heads_are_ignored(tmp_path):
  """A classifier's file ('dinov2.' prefix and a 'classifier.' head) loads
  its backbone; the configured head stays fresh (another number of
  classes)."""
  config, _ = _reference('hf_dinov2')
  model = _tiny_model('hf_dinov2', config, num_classes=5)
  good = dict(safetensors_numpy.load_file(
      os.path.join(FIXTURES, 'hf_dinov2.safetensors')))
  tensors = {'dinov2.' + k: v for k, v in good.items()}
  tensors['classifier.weight'] = np.ones((1000, 64), np.float32)
  fresh = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(
      (1, 12, 12, 3)), train=False))()
  loaded = weight_files.variables('vit_small_patch14_dinov2',
                                  _write(tmp_path / 'task.safetensors',
                                         tensors), fresh)
  np.testing.assert_array_equal(loaded['params']['head']['kernel'],
                                fresh['params']['head']['kernel'])
  np.testing.assert_array_equal(
      loaded['params']['block_1']['mlp_in']['kernel'],
      good['encoder.layer.1.mlp.fc1.weight'].T)


# ConvNeXt's depthwise gradient takes a quarter of a minute to compile: the
# slow tier checks it.
@pytest.mark.parametrize('family', [
    'vit', pytest.param('convnext', marks=pytest.mark.slow)])
def test_frozen_stages_do_not_move_and_bf16_stays_close(family):
  """A train step's gradient is zero on the frozen stages and not after
  them; bf16 computes what float32 does within bf16's precision."""
  if family == 'vit':
    model = vit.VisionTransformer(width=32, depth=3, heads=2, num_classes=3,
                                  patch_size=4, registers=1, frozen_stages=2)
    frozen, trained = ['patch_kernel', 'cls_token', 'block_0'], ['block_1',
                                                                 'norm']
  else:
    model = convnext.ConvNeXt(depths=(1, 1, 1, 1), widths=(8, 16, 24, 32),
                              num_classes=3, frozen_stages=2)
    frozen, trained = ['stem_conv', 'block_0_0'], ['downsample_1_conv',
                                                   'block_1_0', 'norm']
  assert set(frozen) <= model.frozen_modules()
  assert not set(trained) & model.frozen_modules()
  images = jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 3)) * 255
  variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), images,
                                         train=False))()

  def loss(params):
    logits = model.apply({'params': params}, images, train=True,
                         rngs={'dropout': jax.random.PRNGKey(2)})
    return jnp.sum(logits[:, 0])

  grads = jax.jit(jax.grad(loss))(variables['params'])
  norm = lambda name: float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(
      grads[name])))
  assert all(norm(name) == 0 for name in frozen), [norm(n) for n in frozen]
  assert all(norm(name) > 0 for name in trained), [norm(n) for n in trained]
  low = model.clone(dtype=jnp.bfloat16, frozen_stages=0)
  logits = jax.jit(lambda v: model.apply(v, images, train=False))(variables)
  low_logits = jax.jit(lambda v: low.apply(v, images, train=False))(variables)
  assert low_logits.dtype == jnp.float32
  np.testing.assert_allclose(low_logits, logits, atol=0.1 * float(
      jnp.abs(logits).max()) + 1e-3)


def test_layer_decay_scales_each_layer_below_the_head():
  config = defaults.get_config().optimizer
  config.name, config.warmup_steps, config.learning_rate = 'sgd', 0, 1.0
  config.momentum, config.weight_decay, config.layer_decay = 0.0, 0.0, 0.5
  tx = optimizer.create_optimizer(
      config, optimizer.learning_rate_schedule(config, 10), vit.layer_of)
  params = {name: {'w': jnp.ones(2)} for name in (
      'patch_kernel', 'cls_token', 'block_0', 'block_1', 'norm', 'head')}
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params),
                         tx.init(params), params)
  expected = {'head': 1, 'norm': 1, 'block_1': 0.5, 'block_0': 0.25,
              'patch_kernel': 0.125, 'cls_token': 0.125}
  for name, scale in expected.items():
    np.testing.assert_allclose(updates[name]['w'], -scale, err_msg=name)
  assert convnext.layer_of('downsample_2_conv') == convnext.layer_of(
      'block_2_0') == 3
