"""`python -m skinjax.bench` as a function of values: the sections asked
for, measured with a config, into one report (printed by report.tables)."""

import dataclasses
import importlib.util
import itertools
import tempfile

import jax

from skinjax import data
from skinjax.bench import hardware
from skinjax.bench import input_pipeline
from skinjax.bench import train_step
from skinjax.data.builders import lesion_drawing
from skinjax.models import efficientnet_lite

SECTIONS = ('pipeline', 'train_step', 'end_to_end', 'torch')
TORCH_MODELS = ('resnet18', 'resnet50', *efficientnet_lite.VARIANTS)


@dataclasses.dataclass(frozen=True)
class Settings:
  """What to measure (the command's flags)."""
  sections: tuple  # of SECTIONS
  models: tuple
  image_sizes: tuple
  dtypes: tuple
  steps: int
  warmup_steps: int
  num_workers: tuple
  pipeline_batches: int
  num_images: int
  dataset_from_config: bool


def run(config, settings: Settings) -> dict:
  """The report: the machine, the settings, each section's results, the
  config and notes."""
  sections = set(settings.sections)
  device = jax.devices()[0]
  result = {
      'machine': {'platform': device.platform,
                  'device_kind': device.device_kind,
                  'device_count': jax.device_count(), **hardware.machine()},
      'settings': {
          'sections': sorted(sections), 'models': list(settings.models),
          'image_sizes': list(settings.image_sizes),
          'dtypes': list(settings.dtypes), 'steps': settings.steps,
          'warmup_steps': settings.warmup_steps,
          'num_workers': list(settings.num_workers),
          'pipeline_batches': settings.pipeline_batches,
          'dataset': ('config' if settings.dataset_from_config else
                      f'{settings.num_images} generated photos')},
  }
  with tempfile.TemporaryDirectory() as folder:
    num_classes = len(lesion_drawing.CLASS_NAMES)  # as the generated photos
    if sections & {'pipeline', 'end_to_end'}:
      if not settings.dataset_from_config:
        config = input_pipeline.use_generated_dataset(config, folder,
                                                      settings.num_images)
      builder = data.load_builder(config.dataset)
      num_classes = len(builder.info.features['label'].names)
    if 'pipeline' in sections:
      result['pipeline'] = input_pipeline.run(
          config, list(settings.image_sizes), list(settings.num_workers),
          settings.pipeline_batches)
    if sections & {'train_step', 'end_to_end'}:
      result['train_step'] = train_step.run(
          config, list(settings.models), list(settings.image_sizes),
          list(settings.dtypes), num_classes, settings.steps,
          settings.warmup_steps,
          settings.steps if 'end_to_end' in sections else 0)
    if 'torch' in sections:
      result['torch'] = _side_by_side(config, settings, num_classes,
                                      result.get('train_step', []))
  result['config'] = config.to_dict()
  result['notes'] = _notes(result)
  return result


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


def _side_by_side(config, settings: Settings, num_classes: int,
                  step_results) -> dict:
  """The torch steps, each beside skinjax's figure for its setting."""
  if importlib.util.find_spec('torch') is None:
    return {'skipped': 'torch is not installed; pip install -e .[bench]'}
  skinjax_ips = {(r['model'], r['image_size'], r['dtype']):
                 r.get('images_per_second') for r in step_results}
  results = []
  for name, size, dtype in itertools.product(
      [m for m in settings.models if m in TORCH_MODELS],
      settings.image_sizes, settings.dtypes):
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
        label_smoothing=config.label_smoothing, num_steps=settings.steps,
        warmup_steps=settings.warmup_steps))
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
