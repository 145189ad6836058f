"""Helpers shared by the tests: tiny run configs and a CLI runner."""

import atexit
import json
import os
import pkgutil
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

# One XLA compilation cache for the session, for this process and every
# command a test starts (set before jax is imported): they compile the same
# few steps, and compiling is most of a short run's time. Fresh each session
# unless JAX_COMPILATION_CACHE_DIR names one (.ci/run shares one between the
# default and the slow tier).
if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(
      prefix='skinjax-tests-xla-')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'],
                  ignore_errors=True)
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The token of the service the `service` fixture starts.
SERVICE_TOKEN = secrets.token_urlsafe(24)


def _deprecations_fail() -> str:
  """PYTHONWARNINGS under which a DeprecationWarning raised from skinjax's
  own code (its modules, or a CLI run as __main__) is an error, as
  pyproject.toml makes it in this process. -W names modules exactly, so
  each one is listed."""
  import skinjax  # pylint: disable=g-import-not-at-top
  modules = ['__main__'] + [m.name for m in pkgutil.walk_packages(
      skinjax.__path__, 'skinjax.')]
  return ','.join(f'error::DeprecationWarning:{m}' for m in modules)


# Every command a test starts runs with it.
os.environ['PYTHONWARNINGS'] = _deprecations_fail()


def dataset_config(name, data_dir, manual_dir='', **overrides):
  """The default `config.dataset` pointed at a dataset."""
  from skinjax.config import defaults  # pylint: disable=g-import-not-at-top
  config = defaults.get_config().dataset
  config.name, config.data_dir, config.manual_dir = name, str(data_dir), str(
      manual_dir)
  config.update(overrides)
  return config


def tiny_run_flags(data_dir, **overrides):
  """--config.* flags for a seconds-long training run on the small dataset."""
  values = {
      'dataset.name': 'synthetic_lesions/small',
      'dataset.data_dir': data_dir,
      'model.name': 'resnet18',
      'model.width': 8,
      'image_size': 32,
      'batch_size': 16,
      'eval_batch_size': 32,
      'num_train_steps': 20,
      'optimizer.warmup_steps': 2,
      'log_every_steps': 5,
      'eval_every_steps': 10,
      'checkpoint_every_steps': 10,
      'wandb.mode': 'disabled',
      # Most tests never score the run: they skip the end-of-training
      # calibration (trained_run, which predict, serve and export use, and
      # the tests of the calibration itself turn it on).
      'evaluation.calibrate_after_training': False,
  }
  values.update(overrides)
  return [f'--config.{k}={v}' for k, v in values.items()]


TRAIN = ['-m', 'skinjax.train', '--config', 'configs/synthetic.py']


def cpu_devices(count):
  """Environment for `count` CPU devices in a subprocess."""
  return {'JAX_PLATFORMS': 'cpu',
          'XLA_FLAGS': f'--xla_force_host_platform_device_count={count}'}


def start_training(workdir, flags, env=None, **kwargs):
  """`python -m skinjax.train` on configs/synthetic.py, in the background."""
  return subprocess.Popen(
      [sys.executable, *TRAIN, '--workdir', str(workdir), *flags], cwd=REPO,
      env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, **kwargs)


def train(workdir, flags, env=None, expect_returncode=0):
  """Runs training to its end; returns (stdout, stderr)."""
  proc = start_training(workdir, flags, env)
  stdout, stderr = proc.communicate(timeout=600)
  assert proc.returncode == expect_returncode, stdout[-2000:] + stderr[-3000:]
  return stdout, stderr


def wait_for(path, proc, timeout=300):
  """Waits until `path` exists while `proc` runs."""
  deadline = time.time() + timeout
  while not os.path.exists(path):
    assert proc.poll() is None, f'exited {proc.returncode} before {path}'
    assert time.time() < deadline, f'no {path} after {timeout} s'
    time.sleep(0.01)


def records(workdir):
  """The records of WORKDIR/metrics.jsonl."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def saved_state(workdir, step, item='state'):
  """A checkpoint's TrainState (or 'ema') as saved: a dict of numpy arrays,
  whatever devices wrote it."""
  path = os.path.join(workdir, 'checkpoints', str(step), item)
  checkpointer = ocp.StandardCheckpointer()
  saved = checkpointer.metadata(path).item_metadata.tree
  return checkpointer.restore(path, jax.tree.map(
      lambda m: np.zeros(m.shape, m.dtype), saved))


def assert_same_leaves(a, b, rtol=1e-5, atol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def assert_same_weights(workdir, reference, step, items=('state', 'ema')):
  """The checkpoint of `step` in `workdir` holds the weights (and moving
  average) of `reference`'s."""
  for item in items:
    assert_same_leaves(saved_state(workdir, step, item),
                       saved_state(reference, step, item))


def run_module(module, args, env=None, timeout=600, **kwargs):
  """Runs `python -m module args` from the repository root."""
  full_env = dict(os.environ, **(env or {}))
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO,
                        env=full_env, capture_output=True, text=True,
                        timeout=timeout, **kwargs)


def mean_colour_linear_accuracy(train, test, steps=1000):
  """Test accuracy of softmax regression on standardised mean RGB."""
  (x_train, y_train), (x_test, y_test) = train, test
  mean, std = x_train.mean(0), x_train.std(0)
  x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
  num_classes = int(y_train.max()) + 1
  params = (jnp.zeros((x_train.shape[1], num_classes)), jnp.zeros(num_classes))
  tx = optax.adam(0.05)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state):
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
        x_train @ p[0] + p[1], y_train).mean()
    updates, opt_state = tx.update(jax.grad(loss)(params), opt_state)
    return optax.apply_updates(params, updates), opt_state

  for _ in range(steps):
    params, opt_state = step(params, opt_state)
  return float(np.mean(np.argmax(x_test @ params[0] + params[1], -1) == y_test))
