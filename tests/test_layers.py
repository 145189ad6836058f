"""skinjax's Conv and max_pool compute what flax's nn.Conv and nn.max_pool
compute, on every path, in both layer forms (CPU's and XLA's, which is
flax's own max_pool)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skinjax.models import layers


@pytest.mark.parametrize('size, kernel, strides, padding, groups', [
    (2, 3, 1, 'SAME', 1),          # smaller than the kernel: patch matmul
    (1, 3, 1, 'SAME', 1),
    (2, 3, 2, 'SAME', 1),
    (3, 7, 2, [(3, 3), (3, 3)], 1),
    (2, 1, 1, 'SAME', 1),          # 1x1 kernels never need patches
    (9, 3, 2, 'SAME', 1),          # XLA's convolution
    (8, 3, 1, 'VALID', 1),
    (6, 3, 1, 'SAME', 4),          # grouped: XLA's convolution
    (6, 3, 1, 'SAME', 8),          # depthwise: shifted sums
    (7, 5, 2, 'SAME', 8),
    (2, 5, 1, 'SAME', 8),
])
def test_matches_flax_conv(size, kernel, strides, padding, groups,
                           forms='cpu'):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 8))
  args = dict(features=8, kernel_size=(kernel, kernel),
              strides=(strides, strides), padding=padding,
              feature_group_count=groups)
  ours = layers.Conv(**args, layer_forms=forms)
  theirs = nn.Conv(**args)
  params = theirs.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == (
      jax.tree.map(jnp.shape, params))
  # One compiled program per layer: op by op, each case took seconds.
  outputs_and_grads = lambda m: jax.jit(lambda p, x: (m.apply(p, x), jax.grad(
      lambda p, x: jnp.sum(m.apply(p, x) ** 2), argnums=(0, 1))(p, x)))
  ours_y, ours_grad = outputs_and_grads(ours)(params, x)
  theirs_y, theirs_grad = outputs_and_grads(theirs)(params, x)
  np.testing.assert_allclose(ours_y, theirs_y, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(ours_grad), jax.tree.leaves(theirs_grad)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('size, kernel, strides, padding, groups', [
    (2, 3, 1, 'SAME', 1), (7, 5, 2, 'SAME', 8), (3, 7, 2, [(3, 3), (3, 3)], 1)])
def test_xla_forms_match_flax_conv(size, kernel, strides, padding, groups):
  """Where the CPU forms would not be XLA's convolution, the XLA forms are,
  with the same padding."""
  test_matches_flax_conv(size, kernel, strides, padding, groups, forms='xla')


def test_drop_path_drops_whole_examples_and_rescales():
  x = jnp.ones((1000, 2, 2, 3))
  layer = layers.DropPath(0.25)
  assert layer.apply({}, x, deterministic=True) is x
  y = layer.apply({}, x, deterministic=False,
                  rngs={'dropout': jax.random.PRNGKey(0)})
  per_example = np.unique(np.asarray(y).reshape(1000, -1), axis=1)
  assert per_example.shape[1] == 1  # an example is kept or dropped whole
  kept = per_example[:, 0] > 0
  np.testing.assert_allclose(per_example[kept, 0], 1 / 0.75, rtol=1e-6)
  assert 0.7 < kept.mean() < 0.8


@pytest.mark.parametrize('size, window, stride', [
    (8, 3, 2), (9, 3, 2), (7, 2, 2), (6, 3, 1), (5, 5, 3), (3, 3, 2)])
def test_max_pool_matches_flax_with_ties(size, window, stride):
  # Small integers and ReLU'd zeros make ties: the gradient must go to the
  # first maximum of each window, as jax's own select-and-scatter sends it.
  x = jax.random.randint(jax.random.PRNGKey(0), (2, size, size + 1, 4), -3, 4)
  x = jnp.maximum(x, 0).astype(jnp.float32)
  ours = lambda x: layers.max_pool(x, (window, window), (stride, stride),
                                   'cpu')
  theirs = lambda x: nn.max_pool(x, (window, window), (stride, stride), 'SAME')
  g = jax.random.normal(jax.random.PRNGKey(1), jax.eval_shape(theirs, x).shape)
  # Compiled whole, as in a model: op by op, each case took seconds.
  outputs_and_grads = lambda f: jax.jit(
      lambda x, g: (f(x), jax.vjp(f, x)[1](g)[0]))
  ours_y, ours_grad = outputs_and_grads(ours)(x, g)
  theirs_y, theirs_grad = outputs_and_grads(theirs)(x, g)
  np.testing.assert_array_equal(ours_y, theirs_y)
  np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-6, atol=1e-6)
  assert np.count_nonzero(ours_grad) > 0


def test_max_pool_keeps_bfloat16():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4), jnp.bfloat16)
  y, pullback = jax.vjp(
      lambda x: layers.max_pool(x, (3, 3), (2, 2), 'cpu'), x)
  assert y.dtype == pullback(jnp.ones_like(y))[0].dtype == jnp.bfloat16


def _primitives(fn, *args) -> set:
  return {str(e.primitive) for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns}


def test_the_forms_differ_where_they_should_and_auto_picks_by_backend():
  """The CPU forms avoid XLA's depthwise convolution and pooling gradient;
  the XLA forms are those ops. 'auto' takes the CPU forms on CPU only."""
  x = jnp.ones((1, 6, 6, 8))
  for forms, want_native in (('cpu', False), ('xla', True)):
    conv = layers.Conv(8, (3, 3), feature_group_count=8, layer_forms=forms)
    params = conv.init(jax.random.PRNGKey(0), x)
    assert ('conv_general_dilated' in _primitives(
        lambda x: conv.apply(params, x), x)) == want_native, forms
    pool_grad = jax.grad(
        lambda x: layers.max_pool(x, (3, 3), (2, 2), forms).sum())
    assert ('select_and_scatter_add' in str(
        jax.make_jaxpr(pool_grad)(x))) == want_native, forms
  assert layers.cpu_forms('auto') == (jax.default_backend() == 'cpu')
