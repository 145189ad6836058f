"""The compiled train step: it learns, decays the right weights, and gives the
same result on 1 and 4 devices."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from helpers import run_module
from skinjax import models
from skinjax import optim
from skinjax import sharding
from skinjax import steps
from skinjax import train_state


def _setup(**optimizer):
  config = default.get_config()
  config.model.name, config.model.width = 'resnet18', 4
  config.optimizer.warmup_steps = 0
  config.optimizer.update(optimizer)
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes=4)
  tx = optim.create_optimizer(config.optimizer, num_train_steps=1000)
  state = train_state.create_train_state(jax.random.PRNGKey(0), model, tx, 16)
  step = steps.jit_train_step(
      mesh, model=model, tx=tx,
      learning_rate_fn=optim.learning_rate_schedule(config.optimizer, 1000),
      label_smoothing=0.0)
  return mesh, state, step


@pytest.mark.parametrize('name', ['sgd', 'adamw'])
def test_loss_falls_when_fitting_one_batch(name):
  mesh, state, step = _setup(name=name, learning_rate=0.05 if name == 'sgd'
                             else 3e-3)
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch(
      {'image': rng.integers(0, 255, (8, 16, 16, 3)).astype(np.uint8),
       'label': np.arange(8, dtype=np.int32) % 4}, mesh)
  losses = []
  for _ in range(40):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.3 * losses[0], losses
  assert int(state.step) == 40


def test_weight_decay_touches_kernels_only():
  params = {'conv': {'kernel': jnp.ones((3, 3, 2, 2))},
            'bn': {'scale': jnp.ones(2), 'bias': jnp.ones(2)},
            'head': {'kernel': jnp.ones((2, 3)), 'bias': jnp.ones(3)}}
  config = default.get_config().optimizer
  config.warmup_steps, config.learning_rate, config.weight_decay = 0, 1.0, 0.1
  config.momentum = 0.0
  tx = optim.create_optimizer(config, num_train_steps=10)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new['conv']['kernel'], 0.9)
  np.testing.assert_allclose(new['head']['kernel'], 0.9)
  for leaf in (new['bn']['scale'], new['bn']['bias'], new['head']['bias']):
    np.testing.assert_allclose(leaf, 1.0)


def test_schedule_warms_up_then_decays_to_the_end_value():
  config = default.get_config().optimizer
  config.learning_rate, config.warmup_steps = 0.4, 10
  config.end_learning_rate_factor = 0.01
  schedule = optim.learning_rate_schedule(config, num_train_steps=110)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.2)
  assert float(schedule(10)) == pytest.approx(0.4)
  assert float(schedule(60)) == pytest.approx((0.4 + 0.004) / 2)
  assert float(schedule(110)) == pytest.approx(0.004)


def test_four_devices_match_one_device(tmp_path):
  """Same global batch on 1 and 4 CPU devices: same loss, params and BN stats
  (BatchNorm statistics are taken over the global batch)."""
  results = {}
  for n in (1, 4):
    out = tmp_path / f'{n}.npz'
    proc = run_module('tests.one_train_step', [str(out)], env={
        'XLA_FLAGS': f'--xla_force_host_platform_device_count={n}',
        'JAX_PLATFORMS': 'cpu'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results[n] = dict(np.load(out))
  assert results[1].pop('num_devices') == 1
  assert results[4].pop('num_devices') == 4
  assert results[1].keys() == results[4].keys()
  for key in results[1]:
    np.testing.assert_allclose(results[4][key], results[1][key], rtol=1e-5,
                               atol=1e-5, err_msg=key)
  # The comparison is not vacuous: the step changed the BN statistics.
  assert np.abs(results[1]["['batch_stats']['bn_init']['mean']"]).max() > 1e-3


def test_class_weighted_loss_compiles_and_weighs_each_example_by_its_class():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)))
  labels = jnp.asarray([0, 0, 0, 0, 1, 2])
  class_weights = steps.balanced_class_weights(np.asarray(labels), 3)
  loss = jax.jit(lambda lg, lb: steps.cross_entropy_loss(
      lg, lb, 0.0, class_weights))(logits, labels)
  per_example = -jax.nn.log_softmax(logits)[jnp.arange(6), labels]
  weights = class_weights[np.asarray(labels)]
  np.testing.assert_allclose(weights.sum(), 6.0, rtol=1e-6)
  np.testing.assert_allclose(loss, (weights * per_example).sum() / 6.0,
                             rtol=1e-5)
