"""Bad configs are refused in one line that names the key, before any work."""

import glob
import os
import runpy

import pytest

from helpers import REPO, run_module
from skinjax import data
from skinjax.cli import checks
from skinjax.config import defaults
from skinjax.run_folder import run_config


def _error_lines(result):
  return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize('flag, expected', [
    ('--config.optimizer.lerning_rate=0.1',
     "unknown config key 'optimizer.lerning_rate' (did you mean "
     "'optimizer.learning_rate'?)"),
    ('--config.batchsize=8',
     "unknown config key 'batchsize' (did you mean 'batch_size'?)"),
    ('--config.modle.name=resnet18',
     "unknown config key 'modle.name' (did you mean 'model.name'?)"),
    ('--config.wandb.xyz=1', "unknown config key 'wandb.xyz'"),
])
def test_mistyped_key_fails_fast_in_one_line(tmp_path, flag, expected):
  result = run_module('skinjax.train', ['--config', 'configs/synthetic.py',
                                        '--workdir', str(tmp_path), flag])
  assert result.returncode != 0
  assert _error_lines(result) == [f'error: {flag}: {expected}']
  assert os.listdir(tmp_path) == []  # no work started


def test_mistyped_key_inside_config_file_is_named(tmp_path):
  config_file = tmp_path / 'bad.py'
  config_file.write_text(
      'from skinjax.config import defaults\n'
      'def get_config():\n'
      '  config = defaults.get_config()\n'
      '  config.optimizer.momentun = 0.8\n'
      '  return config\n')
  result = run_module('skinjax.evaluate', ['--config', str(config_file),
                                           '--workdir', str(tmp_path)])
  lines = _error_lines(result)
  assert result.returncode != 0
  assert len(lines) == 1, lines
  assert lines[0].startswith(f'error: {config_file}: ')
  assert 'momentun' in lines[0] and 'momentum' in lines[0]


def test_bad_value_names_key(tmp_path):
  result = run_module('skinjax.train', [
      '--config', 'configs/synthetic.py', '--workdir', str(tmp_path),
      '--config.optimizer.name=adam'])
  assert result.returncode != 0
  assert _error_lines(result) == [
      "error: config.optimizer.name='adam': choose one of ['adamw', 'sgd']"]


def test_validate_rejects_unknown_names():
  config = defaults.get_config()
  config.model.name = 'resnet19'
  with pytest.raises(checks.ConfigError, match='model.name'):
    checks.validate(config)
  config = defaults.get_config()
  config.dataset.name = 'dermnett/23'
  with pytest.raises(checks.ConfigError, match='dataset.name'):
    checks.validate(config)


def test_a_dataset_name_cannot_lead_out_of_data_dir(tmp_path):
  """The collection part names a folder under data_dir: refused by the check
  every command runs first (and by the builder), with nothing created."""
  config = defaults.get_config()
  config.dataset.data_dir = str(tmp_path / 'tfds')
  for name in ('image_folder/../../x', 'image_folder/a/b', 'image_folder/..',
               'image_folder/.hidden', 'image_folder/a\\b', 'image_folder/',
               'image_folder//etc'):
    config.dataset.name = name
    with pytest.raises(checks.ConfigError,
                       match=r"^config\.dataset\.name=.*: after the dataset, "
                       r'one collection name [^\n]*$'):
      checks.validate(config)
    with pytest.raises(checks.ConfigError, match='config.dataset.name'):
      data.get_builder(config.dataset)
  assert not os.listdir(tmp_path)
  for name in ('image_folder/myclinic', 'image_folder/clinic-2.v3',
               'dermnet/23', 'synthetic_lesions'):
    config.dataset.name = name
    checks.validate(config)


@pytest.mark.parametrize('key, value', [
    ('evaluation.tta', 'rotate'), ('evaluation.max_risk', 0.0),
    ('evaluation.calibration_bins', 0),
    ('evaluation.quality.skin_refuse_share', 1.0),
    ('evaluation.quality.dark_margin', 0.0),
    ('evaluation.quality.dark_level', 120.0),
    ('evaluation.quality.bright_level', 300),
    ('evaluation.quality.fit_examples', 0)])
def test_validate_rejects_bad_evaluation_settings(key, value):
  config = defaults.get_config()
  *sections, name = key.split('.')
  section = config
  for part in sections:
    section = section[part]
  section[name] = value
  with pytest.raises(checks.ConfigError, match=key.replace('.', r'\.')):
    checks.validate(config)


def test_batch_must_split_over_devices():
  config = defaults.get_config()
  config.batch_size = 30
  with pytest.raises(checks.ConfigError, match='batch_size=30'):
    checks.validate_for_devices(config, device_count=4, process_count=1)


def test_each_device_share_must_split_into_the_micro_batches():
  config = defaults.get_config()
  config.batch_size, config.grad_accum_steps = 32, 3
  with pytest.raises(checks.ConfigError, match='grad_accum_steps=3'):
    checks.validate_for_devices(config, device_count=4, process_count=1)
  config.grad_accum_steps = 2
  checks.validate_for_devices(config, device_count=4, process_count=1)


@pytest.mark.parametrize('decay', [-0.1, 1.0])
def test_ema_decay_must_be_below_1(decay):
  config = defaults.get_config()
  config.ema_decay = decay
  with pytest.raises(checks.ConfigError, match='ema_decay'):
    checks.validate(config)


_CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                       if not p.endswith('__init__.py'))


@pytest.mark.parametrize('path', _CONFIG_FILES, ids=os.path.basename)
def test_every_shipped_config_is_valid(path):
  namespace = {}
  with open(path) as f:
    exec(compile(f.read(), path, 'exec'), namespace)  # pylint: disable=exec-used
  config = namespace['get_config']()
  checks.validate(config)
  assert config.is_locked


@pytest.mark.parametrize('overrides, named', [
    ({'optimizer.warmup_steps': -10}, 'optimizer.warmup_steps=-10'),
    ({'optimizer.learning_rate': -0.1}, 'optimizer.learning_rate=-0.1'),
    ({'input.num_workers': -1}, 'input.num_workers=-1'),
    ({'augment.crop_scale': (0.5, 3.0)}, r'augment.crop_scale=\(0.5, 3.0\)'),
    ({'model.dropout_rate': 1.5}, 'model.dropout_rate=1.5'),
    ({'dataset.validation_fraction': 0.5, 'dataset.test_fraction': 0.5},
     'validation_fraction \\+ test_fraction = 1'),
    ({'dataset.name': 'ham10000', 'dataset.max_short_side': 64,
      'image_size': 224}, 'image_size=224: larger than the photos'),
    ({'dataset.max_image_pixels': 0}, r'max_image_pixels=0: must be in \[1, '),
    ({'dataset.max_image_pixels': 200_000_000},
     'max_image_pixels=200000000: .*PIL refuses'),
    ({'model.name': 'resnet18', 'model.frozen_stages': 6},
     'frozen_stages=6: resnet18 has 5 stages'),
    ({'model.frozen_until_step': -1}, 'frozen_until_step=-1'),
    ({'eval_image_size': -8}, 'eval_image_size=-8'),
    ({'augment.cutmix_alpha': -1.0}, 'augment.cutmix_alpha=-1.0'),
    ({'progressive_resizing': ((80, 300), (96, 200))},
     'progressive_resizing=.*rising steps'),
    ({'progressive_resizing': ((80,),)}, 'progressive_resizing='),
    ({'dataset.name': 'ham10000', 'progressive_resizing': ((300, 10),)},
     'size 300 is larger than the photos'),
    ({'model.name': 'vit_small_patch14_dinov2', 'image_size': 160},
     "image_size: 160 px is not a multiple of .*14-pixel patches; try 154"),
    ({'model.name': 'vit_small_patch14_dinov2', 'image_size': 168,
      'progressive_resizing': ((100, 10),)}, 'progressive_resizing: 100 px'),
    ({'model.init_from': '/nonexistent/dinov2.safetensors'},
     'init_from=/nonexistent/dinov2.safetensors: no such weight file'),
    ({'extend.method': 'knn'}, "extend.method='knn': choose one of"),
    ({'extend.views': 0}, 'extend.views=0: must be >= 1'),
    ({'extend.replay_per_class': -1}, 'extend.replay_per_class=-1'),
    ({'extend.validation_fraction': 1.0}, r'extend.validation_fraction: must'
     r' be in \[0, 1\)'),
])
def test_values_that_would_silently_do_the_wrong_thing_are_refused(
    overrides, named):
  config = defaults.get_config()
  for key, value in overrides.items():
    section, _, name = key.rpartition('.')
    (config[section] if section else config)[name] = value
  with pytest.raises(checks.ConfigError, match=named):
    checks.validate(config)


def test_the_shipped_configs_pass_the_checks():
  weights = os.path.join(REPO, 'tests', 'fixtures', 'backbones',
                         'hf_dinov2.safetensors')
  for path in ('synthetic', 'ham10000', 'ham10000:resnet50', 'ham10000:cpu',
               'ham10000:vit_small_cpu', 'ham10000:vit_small',
               'ham10000:vit_base', 'dermnet', 'dermnet:resnet50',
               'dermnet:cpu', 'dermnet:vit_small_cpu', 'dermnet:vit_base',
               'dermamnist'):
    file, *arg = path.split(':')
    config = runpy.run_path(os.path.join(REPO, 'configs', f'{file}.py'))[
        'get_config'](*arg)
    if config.frozen_features.enabled:
      # The user's weight file; without one, a one-line refusal.
      with pytest.raises(checks.ConfigError, match='needs pretrained'):
        checks.validate(config)
      config.model.init_from = weights
    checks.validate(config)


def test_every_phase_names_a_key_of_the_schema():
  """What evaluation and a resume may change comes from defaults.PHASES: each
  entry a key or group of the schema, each phase a known one."""
  config = defaults.get_config()
  for key, phase in defaults.PHASES.items():
    assert checks.get(config, key) is not None, key
    assert phase in ('anytime', 'scoring', 'bookkeeping'), (key, phase)
  assert set(run_config.EVALUATION_KEYS) & set(run_config.RESUME_KEYS) == {
      k for k, p in defaults.PHASES.items() if p == 'anytime'}


@pytest.mark.parametrize('module', ['skinjax.predict', 'skinjax.serve',
                                    'skinjax.extend'])
def test_a_misspelt_key_on_a_run_command_is_one_line(module, tmp_path):
  """The run commands' --config applies --config.KEY=VALUE as the flag is
  defined, on import, before the flags parser's own error handling."""
  result = run_module(module, ['--workdir', str(tmp_path),
                               '--config.evaluation.ttaa=none'])
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode == 1 and 'Traceback' not in result.stderr, (
      result.stderr[-2000:])
  assert last == ("error: --config.evaluation.ttaa=none: unknown config key "
                  "'evaluation.ttaa' (did you mean 'evaluation.tta'?)"), last
