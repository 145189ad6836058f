"""skinjax's Conv computes what flax's nn.Conv computes, on every path."""

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
def test_matches_flax_conv(size, kernel, strides, padding, groups):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 8))
  args = dict(features=8, kernel_size=(kernel, kernel),
              strides=(strides, strides), padding=padding,
              feature_group_count=groups)
  ours, theirs = layers.Conv(**args), nn.Conv(**args)
  params = theirs.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == (
      jax.tree.map(jnp.shape, params))
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p, x: jnp.sum(m.apply(p, x) ** 2)
  ours_grad = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  theirs_grad = jax.grad(loss(theirs), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(ours_grad), jax.tree.leaves(theirs_grad)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


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
  ours = lambda x: layers.max_pool(x, (window, window), (stride, stride))
  theirs = lambda x: nn.max_pool(x, (window, window), (stride, stride), 'SAME')
  np.testing.assert_array_equal(ours(x), theirs(x))
  g = jax.random.normal(jax.random.PRNGKey(1), theirs(x).shape)
  ours_grad = jax.vjp(ours, x)[1](g)[0]
  theirs_grad = jax.vjp(theirs, x)[1](g)[0]
  np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-6, atol=1e-6)
  assert np.count_nonzero(ours_grad) > 0


def test_max_pool_keeps_bfloat16():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4), jnp.bfloat16)
  y, pullback = jax.vjp(lambda x: layers.max_pool(x, (3, 3), (2, 2)), x)
  assert y.dtype == pullback(jnp.ones_like(y))[0].dtype == jnp.bfloat16


def _primitives(fn, *args):
  """The primitives `fn` is made of, those inside its calls included."""
  found, jaxprs = set(), [jax.make_jaxpr(fn)(*args).jaxpr]
  while jaxprs:
    for eqn in jaxprs.pop().eqns:
      found.add(eqn.primitive.name)
      jaxprs += [getattr(j, 'jaxpr', j)
                 for j in jax.extend.core.jaxprs_in_params(eqn.params)]
  return found


def test_plain_forms_are_one_xla_op_each_with_the_same_results():
  """Fast forms (patch matmul, depthwise shifted sums, max pool with a
  custom gradient) against plain ones: one convolution or pool each.
  Functions are traced anew in each form (jax's caches ignore the form)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 7, 8))
  convs = [(layers.Conv(8, (3, 3)), x[:, :2, :2]),  # patch matmul when fast
           (layers.Conv(8, (5, 5), (2, 2), feature_group_count=8), x)]
  params = [jax.jit(conv.init)(jax.random.PRNGKey(1), inputs)
            for conv, inputs in convs]

  def outputs(params):
    return [conv.apply(p, inputs) for (conv, inputs), p in zip(convs, params)
            ] + [layers.max_pool(x, (3, 3), (2, 2))]

  fast = jax.jit(lambda p: outputs(p))(params)
  assert 'custom_vjp_call' in _primitives(lambda p: outputs(p), params)
  with layers.plain_forms():
    plain = jax.jit(lambda p: outputs(p))(params)
    primitives = _primitives(lambda p: outputs(p), params)
  assert 'custom_vjp_call' not in primitives
  assert not primitives & {'slice', 'concatenate', 'dot_general'}
  for a, b in zip(plain, fast):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
