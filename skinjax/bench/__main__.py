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

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from skinjax import models
from skinjax.bench import report
from skinjax.bench import run as bench_run
from skinjax.cli import checks
from skinjax.cli import main as cli_main
from skinjax.config import defaults

SECTIONS = bench_run.SECTIONS
DTYPES = tuple(models.DTYPES)

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  checks.validate_here(config)
  result = bench_run.run(config, bench_run.Settings(
      sections=tuple(_SECTIONS.value), models=tuple(_MODELS.value),
      image_sizes=tuple(int(s) for s in _IMAGE_SIZES.value),
      dtypes=tuple(_DTYPES.value), steps=_STEPS.value,
      warmup_steps=_WARMUP_STEPS.value,
      num_workers=tuple(int(w) for w in _NUM_WORKERS.value),
      pipeline_batches=_PIPELINE_BATCHES.value, num_images=_NUM_IMAGES.value,
      dataset_from_config=_DATASET_FROM_CONFIG.value))
  print(report.tables(result))
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'w') as f:
      json.dump(result, f, indent=2)


if __name__ == '__main__':
  cli_main.run(main)
