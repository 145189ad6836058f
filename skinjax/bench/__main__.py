r"""Benchmarks skinjax's input pipeline and train step; prints tables, writes JSON.

  python -m skinjax.bench [--config CONFIG] [--config.KEY=VALUE ...]
      [--sections pipeline,train_step,end_to_end,torch] [--models ...]
      [--image_sizes 224,128] [--dtypes float32,bfloat16] [--steps 10]
      [--num_workers 0,1,2] [--output bench.json]

The global batch, ResNet width, optimiser and augmentation come from the
config (`--config.batch_size=32`); PyTorch's step takes the same optimiser
and label smoothing, and for the Lite models the same dropout and drop path
(configs/ham10000.py has the Lite recipe). Sections:
  pipeline    images/s of the training input pipeline by worker count, and of
              a plain loop doing the same per-image work;
  train_step  skinjax's jitted train step on a synthetic batch on the device:
              compile time, step time, peak memory, FLOPs and, on known
              GPUs/TPUs, model FLOPs utilisation;
  end_to_end  the same step fed by the real pipeline (config.input.*);
  torch       the same steps in PyTorch eager (ResNet-18/50,
              EfficientNet-Lite0/1/2), if torch is installed.
The pipeline reads generated 256 px photos prepared by skinjax's image_folder
builder in a temporary folder, or config.dataset with --dataset_from_config.
"""

import dataclasses
import importlib.util
import itertools
import json
import tempfile

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from skinjax import data
from skinjax import models
from skinjax.bench import hardware
from skinjax.bench import input_pipeline
from skinjax.bench import report
from skinjax.bench import train_step
from skinjax.cli import checks
from skinjax.cli import main as cli_main
from skinjax.config import defaults
from skinjax.data.builders import lesion_drawing
from skinjax.models import efficientnet_lite

SECTIONS = ('pipeline', 'train_step', 'end_to_end', 'torch')
DTYPES = tuple(models.DTYPES)
_TORCH_MODELS = ('resnet18', 'resnet50', *efficientnet_lite.VARIANTS)

_CONFIG = config_flags.DEFINE_config_file(
    'config', defaults.__file__, 'Config file; batch_size, model.width, '
    'optimizer, augment, input and dataset are read from it.',
    lock_config=True)
_SECTIONS = flags.DEFINE_list('sections', list(SECTIONS),
                              f'Which to run, of {SECTIONS}.')
_MODELS = flags.DEFINE_list('models',
                            ['resnet18', 'resnet50', 'efficientnet_lite0'],
                            'Train step models (skinjax.models.MODELS).')
_IMAGE_SIZES = flags.DEFINE_list('image_sizes', ['224', '128'],
                                 'Image sizes, in pixels.')
_DTYPES = flags.DEFINE_list('dtypes', list(DTYPES),
                            'Compute dtypes (config.model.dtype).')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed train steps per setting.')
_WARMUP_STEPS = flags.DEFINE_integer(
    'warmup_steps', 2, 'Untimed steps after compiling, per setting.')
_NUM_WORKERS = flags.DEFINE_list(
    'num_workers', ['0', '1', '2'],
    'Input pipeline worker processes to compare (config.input.num_workers).')
_PIPELINE_BATCHES = flags.DEFINE_integer(
    'pipeline_batches', 20, 'Timed batches per input pipeline setting.')
_NUM_IMAGES = flags.DEFINE_integer(
    'num_images', 4096,
    'Photos to generate for the pipeline. Keep it in the thousands: grain '
    'shuffles an index in time inverse to the dataset size (0.2 ms an image '
    'at 128 images, 10 us at 4,096).')
_DATASET_FROM_CONFIG = flags.DEFINE_bool(
    'dataset_from_config', False,
    'Read config.dataset (prepared on first use) instead of generated photos.')
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON report.')

flags.register_validator('sections', lambda v: set(v) <= set(SECTIONS),
                         f'choose from {SECTIONS}')
flags.register_validator('models', lambda v: set(v) <= set(models.MODELS),
                         f'choose from {sorted(models.MODELS)}')
flags.register_validator('dtypes', lambda v: set(v) <= set(DTYPES),
                         f'choose from {DTYPES}')
for _name in ('image_sizes', 'num_workers'):
  flags.register_validator(
      _name, lambda v: all(x.isdigit() for x in v), 'whole numbers')


def _torch_model(config, name: str) -> dict:
  """torch_step.MODELS' arguments: the ResNet width, or skinjax's own Lite
  blocks (so that the two nets cannot differ) and the config's dropout and
  drop path."""
  if name.startswith('resnet'):
    return {'width': config.model.width}
  blocks = efficientnet_lite.blocks(*efficientnet_lite.VARIANTS[name])
  return {'blocks': [dataclasses.asdict(b) for b in blocks],
          'dropout_rate': config.model.dropout_rate,
          'drop_path_rate': config.model.drop_path_rate}


def _side_by_side(config, image_sizes, num_classes: int,
                  step_results) -> dict:
  """The torch steps, each beside skinjax's figure for its setting."""
  if importlib.util.find_spec('torch') is None:
    return {'skipped': 'torch is not installed; pip install -e .[bench]'}
  skinjax_ips = {(r['model'], r['image_size'], r['dtype']):
                 r.get('images_per_second') for r in step_results}
  results = []
  for name, size, dtype in itertools.product(
      [m for m in _MODELS.value if m in _TORCH_MODELS],
      image_sizes, _DTYPES.value):
    row = {'model': name, 'image_size': size, 'dtype': dtype,
           'batch_size': config.batch_size}
    if name.startswith('resnet'):
      row['width'] = config.model.width
    print(f'torch: {row}', flush=True)
    row.update(hardware.run_isolated(
        'skinjax.bench.torch_step', model_name=name,
        model=_torch_model(config, name), image_size=size, dtype=dtype,
        batch_size=config.batch_size, num_classes=num_classes,
        optimizer=config.optimizer.to_dict(),
        label_smoothing=config.label_smoothing, num_steps=_STEPS.value,
        warmup_steps=_WARMUP_STEPS.value))
    ours = skinjax_ips.get((name, size, dtype))
    if ours and 'images_per_second' in row:
      row['skinjax_images_per_second'] = ours
      row['skinjax_over_torch'] = ours / row['images_per_second']
    results.append(row)
  return {'results': results}


def _notes(report_dict: dict) -> list:
  notes = []
  steps = [r for r in report_dict.get('train_step', []) if 'error' not in r]
  if steps and all(r['mfu'] is None for r in steps):
    notes.append(f"MFU: omitted, no peak FLOP/s known for "
                 f"{report_dict['machine']['device_kind']!r} (known: "
                 f"{', '.join(p[0] for p in hardware.PEAK_FLOPS)}).")
  if steps:
    notes.append('FLOPs are XLA cost analysis of the compiled step, per '
                 'device; MFU divides them by the step time and the '
                 "device's dense peak for the compute dtype.")
  return notes


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  checks.validate_here(config)
  sections = set(_SECTIONS.value)
  image_sizes = [int(s) for s in _IMAGE_SIZES.value]
  worker_counts = [int(w) for w in _NUM_WORKERS.value]
  device = jax.devices()[0]
  result = {
      'machine': {'platform': device.platform,
                  'device_kind': device.device_kind,
                  'device_count': jax.device_count(), **hardware.machine()},
      'settings': {
          'sections': sorted(sections), 'models': _MODELS.value,
          'image_sizes': image_sizes, 'dtypes': _DTYPES.value,
          'steps': _STEPS.value, 'warmup_steps': _WARMUP_STEPS.value,
          'num_workers': worker_counts,
          'pipeline_batches': _PIPELINE_BATCHES.value,
          'dataset': ('config' if _DATASET_FROM_CONFIG.value else
                      f'{_NUM_IMAGES.value} generated photos')},
  }
  with tempfile.TemporaryDirectory() as folder:
    num_classes = len(lesion_drawing.CLASS_NAMES)  # as the generated photos
    if sections & {'pipeline', 'end_to_end'}:
      if not _DATASET_FROM_CONFIG.value:
        config = input_pipeline.use_generated_dataset(config, folder,
                                                      _NUM_IMAGES.value)
      builder = data.load_builder(config.dataset)
      num_classes = len(builder.info.features['label'].names)
    if 'pipeline' in sections:
      result['pipeline'] = input_pipeline.run(
          config, image_sizes, worker_counts, _PIPELINE_BATCHES.value)
    if sections & {'train_step', 'end_to_end'}:
      result['train_step'] = train_step.run(
          config, _MODELS.value, image_sizes, _DTYPES.value, num_classes,
          _STEPS.value, _WARMUP_STEPS.value,
          _STEPS.value if 'end_to_end' in sections else 0)
    if 'torch' in sections:
      result['torch'] = _side_by_side(config, image_sizes, num_classes,
                                      result.get('train_step', []))
  result['config'] = config.to_dict()
  result['notes'] = _notes(result)
  print(report.tables(result))
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'w') as f:
      json.dump(result, f, indent=2)


if __name__ == '__main__':
  cli_main.run(main)
