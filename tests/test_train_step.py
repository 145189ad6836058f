"""The compiled train step: it learns, decays the right weights, gives the
same result on 1 and 4 devices and on 2 processes, never applies a
non-finite update, accumulates gradients, averages weights and computes in
bfloat16 when asked."""

import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import REPO
from skinjax import models
from skinjax.config import defaults
from skinjax.parallel import determinism
from skinjax.parallel import sharding
from skinjax.training import loss as loss_lib
from skinjax.training import optimizer as optim
from skinjax.training import state as train_state
from skinjax.training import step as steps


def _setup(model_overrides=(), ema_decay=0.0, grad_accum_steps=1,
           **optimizer):
  config = defaults.get_config()
  config.model.name, config.model.width = 'resnet18', 4
  config.model.update(dict(model_overrides))
  config.optimizer.warmup_steps = 0
  config.optimizer.update(optimizer)
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes=4)
  schedule = optim.learning_rate_schedule(config.optimizer, 1000)
  tx = optim.create_optimizer(config.optimizer, schedule)
  # Compiled, as a run initialises: op by op, init took ~20 s.
  state = jax.jit(train_state.create_train_state, static_argnums=(1, 2, 3, 4))(
      jax.random.PRNGKey(0), model, tx, 16, ema_decay > 0)
  step = steps.jit_train_step(mesh, model, tx, steps.StepOptions(
      schedule, grad_accum_steps=grad_accum_steps, ema_decay=ema_decay))
  return mesh, state, step


def _batch(mesh, size=8, seed=0, dtype=np.uint8, nan_pixel=False):
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 255, (size, 16, 16, 3)).astype(dtype)
  if nan_pixel:
    image[3, 5, 5, 0] = np.nan
  return sharding.shard_batch(
      {'image': image, 'label': np.arange(size, dtype=np.int32) % 4}, mesh)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize(
    'name', ['sgd', pytest.param('adamw', marks=pytest.mark.slow)])
def test_loss_falls_when_fitting_one_batch(name):
  mesh, state, step = _setup(name=name, learning_rate=0.05 if name == 'sgd'
                             else 3e-3)
  batch = _batch(mesh)
  losses = []
  for _ in range(40):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.3 * losses[0], losses
  assert int(state.step) == 40


@pytest.fixture(scope='module')
def ema_step():
  """(mesh, step) with EMA decay 0.99, for float32 images (NaN-able)."""
  mesh, _, step = _setup(ema_decay=0.99, learning_rate=0.05)
  return mesh, step


def _ema_state(mesh):
  _, state, _ = _setup(ema_decay=0.99, learning_rate=0.05)
  return state


def test_a_non_finite_batch_changes_nothing_but_the_step_counter(ema_step):
  """A NaN pixel makes the loss NaN: params, optimiser state, BatchNorm
  statistics and EMA stay bit-identical; the next good batch trains."""
  mesh, step = ema_step
  batch = lambda **kwargs: _batch(mesh, dtype=np.float32, **kwargs)
  state, _ = step(_ema_state(mesh), batch())  # momentum, EMA non-trivial
  before = _leaves((state.params, state.batch_stats, state.opt_state,
                    state.ema))
  skipped, metrics = step(state, batch(seed=1, nan_pixel=True))
  assert not bool(metrics['finite']) and np.isnan(float(metrics['loss']))
  assert int(skipped.step) == 2
  after = _leaves((skipped.params, skipped.batch_stats, skipped.opt_state,
                   skipped.ema))
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)
  trained, metrics = step(skipped, batch(seed=2))
  assert bool(metrics['finite'])
  assert not np.allclose(_leaves(trained.params)[0], before[0])


def test_ema_moves_towards_the_new_weights_with_a_warmed_up_decay(ema_step):
  """After the first update, decay = min(0.99, (1 + 0) / (10 + 0)) = 0.1."""
  mesh, step = ema_step
  state = _ema_state(mesh)
  initial = _leaves((state.params, state.batch_stats))
  new, _ = step(state, _batch(mesh, dtype=np.float32))
  for old, raw, ema in zip(initial, _leaves((new.params, new.batch_stats)),
                           _leaves((new.ema['params'],
                                    new.ema['batch_stats']))):
    np.testing.assert_allclose(ema, 0.1 * old + 0.9 * raw, rtol=1e-5,
                               atol=1e-7)


@pytest.mark.slow  # the default tier's 10-minute budget
def test_gradient_accumulation_matches_one_big_batch():
  """With BatchNorm statistics frozen, nothing depends on how the batch is
  split: 4 micro-batches give the update of the whole batch."""
  results = []
  for accum in (1, 4):
    mesh, state, step = _setup({'freeze_batch_stats': True},
                               grad_accum_steps=accum, learning_rate=0.1)
    state, metrics = step(state, _batch(mesh, size=16))
    results.append((_leaves(state.params), float(metrics['loss']),
                    float(metrics['accuracy'])))
  (whole, loss, accuracy), (accumulated, accum_loss, accum_accuracy) = results
  assert accum_loss == pytest.approx(loss, rel=1e-5)
  assert accum_accuracy == accuracy
  for a, b in zip(whole, accumulated):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  initial = _leaves(_setup({'freeze_batch_stats': True})[1].params)
  assert not all(np.allclose(a, b) for a, b in zip(whole, initial))


def test_bfloat16_training_keeps_float32_master_weights_and_loss():
  """(test_models checks the bf16 forward pass.) The loss, the updated
  parameters and BatchNorm statistics stay float32."""
  mesh, state, step = _setup({'dtype': 'bfloat16'}, learning_rate=0.05)
  before = _leaves(state.params)
  new, metrics = step(state, _batch(mesh))
  assert metrics['loss'].dtype == jnp.float32 and bool(metrics['finite'])
  dtypes = {x.dtype for x in jax.tree.leaves((new.params, new.batch_stats))}
  assert dtypes == {jnp.dtype('float32')}
  assert not all(np.allclose(a, b) for a, b in zip(_leaves(new.params),
                                                   before))


def test_weight_decay_touches_kernels_only():
  params = {'conv': {'kernel': jnp.ones((3, 3, 2, 2))},
            'bn': {'scale': jnp.ones(2), 'bias': jnp.ones(2)},
            'head': {'kernel': jnp.ones((2, 3)), 'bias': jnp.ones(3)}}
  config = defaults.get_config().optimizer
  config.warmup_steps, config.learning_rate, config.weight_decay = 0, 1.0, 0.1
  config.momentum = 0.0
  tx = optim.create_optimizer(config, optim.learning_rate_schedule(config, 10))
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new['conv']['kernel'], 0.9)
  np.testing.assert_allclose(new['head']['kernel'], 0.9)
  for leaf in (new['bn']['scale'], new['bn']['bias'], new['head']['bias']):
    np.testing.assert_allclose(leaf, 1.0)


def test_schedule_warms_up_then_decays_to_the_end_value():
  config = defaults.get_config().optimizer
  config.learning_rate, config.warmup_steps = 0.4, 10
  config.end_learning_rate_factor = 0.01
  schedule = optim.learning_rate_schedule(config, num_train_steps=110)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.2)
  assert float(schedule(10)) == pytest.approx(0.4)
  assert float(schedule(60)) == pytest.approx((0.4 + 0.004) / 2)
  assert float(schedule(110)) == pytest.approx(0.004)


def _one_train_step(out, num_devices, *process_args, env=()):
  """Starts tests/one_train_step.py with `num_devices` CPU devices."""
  return subprocess.Popen(
      [sys.executable, '-m', 'tests.one_train_step', str(out), *process_args],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=(
          f'--xla_force_host_platform_device_count={num_devices}'), **dict(env)))


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wait(proc):
  output, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, output[-3000:]


def _result(proc, out):
  _wait(proc)
  return dict(np.load(out))


@pytest.fixture(scope='module')
def step_results(tmp_path_factory):
  """Two steps on the same global batch in one process on 1 and on 4
  devices. Both start at once: most of their time is spent importing and
  compiling."""
  out = tmp_path_factory.mktemp('steps')
  procs = {n: _one_train_step(out / f'{n}.npz', n) for n in (1, 4)}
  return {n: _result(proc, out / f'{n}.npz') for n, proc in procs.items()}


def _assert_same_step(result, reference):
  assert result.keys() == reference.keys()
  for key in reference:
    if key not in ('num_devices', 'num_processes'):
      np.testing.assert_allclose(result[key], reference[key], rtol=1e-5,
                                 atol=1e-5, err_msg=key)


@pytest.mark.slow  # two subprocesses, ~35 s: the slow tier has the others
def test_four_devices_match_one_device(step_results):
  """Same global batch on 1 and 4 CPU devices: same loss, params and BN stats
  (BatchNorm statistics are taken over the global batch)."""
  one, four = step_results[1], step_results[4]
  assert (one['num_devices'], four['num_devices']) == (1, 4)
  _assert_same_step(four, one)
  # The comparison is not vacuous: the step changed the BN statistics.
  assert np.abs(one["['batch_stats']['bn_init']['mean']"]).max() > 1e-3


@pytest.mark.parametrize('ahead', [0, 2])
def test_device_batches_are_copied_ahead_in_order(ahead):
  pulled = []

  def host_batches():
    for i in range(5):
      pulled.append(i)
      yield {'label': np.full((4,), i, np.int32)}

  mesh = sharding.create_mesh()
  batches = sharding.device_batches(host_batches(), mesh, ahead)
  first = next(batches)
  assert pulled == list(range(ahead + 1))  # the next ones already on device
  assert first['label'].sharding == sharding.batch_sharded(mesh)
  labels = [int(b['label'][0]) for b in [first, *batches]]
  assert labels == [0, 1, 2, 3, 4]


def test_importing_skinjax_starts_no_jax_backend():
  """jax.distributed.initialize (and the deterministic-ops flag) must come
  before any backend starts: no library module may touch a device when
  imported (a jnp array at module level does). The commands at the top are
  left out only because each defines the same absl flags; the bench's torch
  step, because torch is optional."""
  code = (
      'import importlib, pkgutil, skinjax\n'
      'from jax._src import xla_bridge\n'
      'for m in pkgutil.walk_packages(skinjax.__path__, "skinjax."):\n'
      '  if (m.name.count(".") > 1 or m.ispkg) and not m.name.endswith(\n'
      '      ("__main__", "torch_step")):\n'
      '    importlib.import_module(m.name)\n'
      'print(xla_bridge.backends_are_initialized())\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == 'False'


def test_deterministic_asks_xla_once_and_keeps_the_other_flags(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  determinism.request(False)
  assert os.environ['XLA_FLAGS'] == '--xla_force_host_platform_device_count=2'
  determinism.request(True)
  determinism.request(True)
  assert os.environ['XLA_FLAGS'].split() == [
      '--xla_force_host_platform_device_count=2', determinism.FLAG]


@pytest.mark.slow
def test_two_processes_of_two_devices_match_one_process_of_four(
    step_results, tmp_path):
  """jax.distributed on 127.0.0.1 with gloo collectives, each process
  feeding its half of the same global batch."""
  port = _free_port()
  procs = [_one_train_step(tmp_path / f'{i}.npz', 2, f'127.0.0.1:{port}', '2',
                           str(i)) for i in range(2)]
  result = _result(procs[0], tmp_path / '0.npz')
  _wait(procs[1])
  assert (result['num_processes'], result['num_devices']) == (2, 4)
  _assert_same_step(result, step_results[4])


@pytest.mark.slow
def test_under_srun_the_processes_find_each_other_from_slurm_variables(
    step_results, tmp_path):
  """srun's environment for 2 tasks on this host, and no flags: the same
  step as 1 process x 4 devices."""
  slurm = {'SLURM_JOB_ID': '4242', 'SLURM_STEP_NODELIST': 'localhost',
           'SLURM_NTASKS': '2', 'SLURM_STEP_NUM_TASKS': '2',
           'SLURM_STEP_TASKS_PER_NODE': '2',
           'JAX_COORDINATOR_PORT': str(_free_port())}
  procs = [_one_train_step(tmp_path / f'{i}.npz', 2, env={
      **slurm, 'SLURM_PROCID': str(i), 'SLURM_LOCALID': str(i)})
           for i in range(2)]
  result = _result(procs[0], tmp_path / '0.npz')
  _wait(procs[1])
  assert (result['num_processes'], result['num_devices']) == (2, 4)
  _assert_same_step(result, step_results[4])


def test_class_weighted_loss_compiles_and_weighs_each_example_by_its_class():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)))
  labels = jnp.asarray([0, 0, 0, 0, 1, 2])
  class_weights = loss_lib.balanced_class_weights(np.asarray(labels), 3)
  loss = jax.jit(lambda lg, lb: loss_lib.cross_entropy_loss(
      lg, lb, 0.0, class_weights))(logits, labels)
  per_example = -jax.nn.log_softmax(logits)[jnp.arange(6), labels]
  weights = class_weights[np.asarray(labels)]
  np.testing.assert_allclose(weights.sum(), 6.0, rtol=1e-6)
  np.testing.assert_allclose(loss, (weights * per_example).sum() / 6.0,
                             rtol=1e-5)


def _frozen_setup(name, frozen_stages, image_size=16):
  config = defaults.get_config()
  config.model.name, config.model.width = name, 4
  config.optimizer.update(name='adamw', warmup_steps=0, learning_rate=1e-2,
                          weight_decay=0.05)
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes=4).clone(
      frozen_stages=frozen_stages)
  schedule = optim.learning_rate_schedule(config.optimizer, 1000)
  tx = optim.create_optimizer(config.optimizer, schedule)
  state = jax.jit(train_state.create_train_state, static_argnums=(1, 2, 3))(
      jax.random.PRNGKey(0), model, tx, image_size)
  step = steps.jit_train_step(mesh, model, tx, steps.StepOptions(schedule))
  return mesh, model, state, step


@pytest.mark.slow  # two compiles of a train step: ~40 s
def test_frozen_stages_get_no_update_and_no_backward_pass():
  """ResNet-18, the stem and first stage frozen, AdamW with weight decay:
  their weights and BatchNorm statistics stay bit for bit, the rest moves,
  and the step computes markedly less (no backward pass through them)."""
  mesh, model, state, step = _frozen_setup('resnet18', frozen_stages=2)
  frozen = model.frozen_modules()
  assert frozen == {'conv_init', 'bn_init', 'BasicBlock_0', 'BasicBlock_1'}
  before = jax.device_get((state.params, state.batch_stats))
  new_state, _ = step(state, _batch(mesh))
  params, batch_stats = jax.device_get((new_state.params,
                                        new_state.batch_stats))
  for name in frozen:
    for old, new in zip(_leaves(before[0][name]), _leaves(params[name])):
      np.testing.assert_array_equal(old, new)
  for name in frozen & set(batch_stats):
    for old, new in zip(_leaves(before[1][name]), _leaves(batch_stats[name])):
      np.testing.assert_array_equal(old, new)
  def moved(old, new):
    return any(not np.array_equal(a, b)
               for a, b in zip(_leaves(old), _leaves(new)))
  for name in ('BasicBlock_2', 'BasicBlock_7', models.HEAD):
    assert moved(before[0][name], params[name]), name
  assert moved(before[1]['BasicBlock_2'], batch_stats['BasicBlock_2'])

  def flops(frozen_stages):
    _, _, state, step = _frozen_setup('resnet18', frozen_stages)
    return step.lower(state, _batch(mesh)).cost_analysis()['flops']
  # XLA's count: 4.25 against 5.05 MFLOP here (0.84); the same program
  # with nothing frozen would count as much as the unfrozen one.
  assert flops(2) < 0.9 * flops(0), (flops(2), flops(0))


@pytest.mark.parametrize('name', sorted(models.MODELS))
def test_frozen_modules_name_the_first_stages_of_every_model(name):
  """Every name is a module of the model (a misnamed one would train), and
  each further stage frozen adds modules."""
  config = defaults.get_config()
  config.model.name = name
  model = models.create_model(config.model, num_classes=4)
  params = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3), jnp.uint8),
      train=False))['params']
  counts = []
  for n in range(models.STAGES[name] + 1):
    frozen = model.clone(frozen_stages=n).frozen_modules()
    assert frozen <= set(params), frozen - set(params)
    counts.append(len(frozen))
  assert counts[0] == 0 and all(a < b for a, b in zip(counts, counts[1:]))
  assert models.HEAD not in frozen
