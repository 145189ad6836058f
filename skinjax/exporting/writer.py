"""A calibrated checkpoint as a file that runs without skinjax: ONNX (for
onnxruntime and the runtimes that read ONNX) or StableHLO (jax.export, for
any JAX or XLA).

Both take uint8 RGB photos already cropped and resized to the model's input
size (the host-side part of skinjax's preparation, see
skinjax.exporting.exported.prepare) and do the rest inside: normalisation,
the network (with the run's test-time augmentation), the temperature and the
softmax. Both carry the same metadata (`metadata`), and each is checked
against the JAX model before it is written.
"""

import importlib.metadata
import io
import json
import logging
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from skinjax import errors
from skinjax import progress
from skinjax.exporting import exported
from skinjax.inference import forward
from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.run_folder import atomic
from skinjax.run_folder import model_card

FORMATS = ('onnx', 'stablehlo')
# jax.export lowers for each; the caller's backend picks its own.
STABLEHLO_PLATFORMS = ('cpu', 'cuda')
# The most an export may differ from the JAX model on the check images.
TOLERANCE = 1e-4
_ONNX_INSTALL = ("pip install -e '.[export]' && pip install --no-deps "
                 "'jax2onnx==0.17.1'")


class ExportError(errors.UserError):
  """The export cannot be made or does not compute what the model does."""


def metadata(config, checkpoint: restore.Checkpoint) -> dict:
  """What an integrator needs beside the graph: the classes, the
  calibration, and how photos must be prepared for the input."""
  calibration = checkpoint.calibration
  recipe = preparation.Recipe.from_config(config)
  size = recipe.image_size
  return {
      'format_version': exported.FORMAT_VERSION,
      'skinjax_version': importlib.metadata.version('skinjax'),
      'model': config.model.name,
      'dataset': config.dataset.name,
      'checkpoint_step': int(checkpoint.step),
      'weights': checkpoint.weights,
      'params_digest': restore.params_digest(checkpoint.state.params),
      'class_names': list(checkpoint.class_names),
      'temperature': float(calibration.temperature),
      # Top probability below which a photo is flagged 'uncertain'; null:
      # no threshold met max_risk on validation, so every photo is flagged.
      'abstain_threshold': calibration.threshold,
      'max_risk': calibration.max_risk,
      # The 'unfamiliar' flag's score and the threshold above which it is
      # raised (skinjax.evaluation.unfamiliar). This file outputs
      # probabilities only, not that score: the flag needs skinjax.
      'unfamiliar_score': calibration.unfamiliar_score,
      'unfamiliar_threshold': calibration.unfamiliar_threshold,
      'tta': config.evaluation.tta,
      'image_size': size,
      'input': {
          'name': exported.INPUT_NAME, 'dtype': 'uint8',
          'shape': ['batch', size, size, 3],
          'layout': 'NHWC, RGB, 0-255',
          'preparation': {
              'steps': 'EXIF rotation applied, RGB, short side shrunk to at '
                       'most max_short_side and re-encoded as JPEG of '
                       'jpeg_quality (as a dataset build stores photos); '
                       'then the central square of crop_fraction of the '
                       'short side, bilinear-resized to image_size',
              'max_short_side': recipe.max_short_side,
              'jpeg_quality': recipe.jpeg_quality,
              'crop_fraction': recipe.crop_fraction,
              'max_image_pixels': recipe.max_image_pixels,
          },
      },
      'output': {
          'name': exported.OUTPUT_NAME, 'dtype': 'float32',
          'shape': ['batch', len(checkpoint.class_names)],
          'meaning': 'calibrated probabilities, softmax(logits / '
                     'temperature), in class_names order; they support a '
                     "clinician's judgement and are not a diagnosis",
      },
  }


def probabilities_fn(checkpoint: restore.Checkpoint, tta: str,
                     layer_forms: str = 'xla'):
  """uint8 images [batch, size, size, 3] -> calibrated probabilities, the
  logits being those evaluate and predict compute (forward.eval_step); by
  default in XLA's native layer forms (model.layer_forms='xla'), which
  exporters translate into ONNX's Conv and MaxPool, where the CPU forms
  would be hundreds of slices and a rank-4 pool onnxruntime cannot run."""
  state = jax.device_get(checkpoint.state)
  temperature = checkpoint.calibration.temperature
  model = checkpoint.model.clone(layer_forms=layer_forms)

  def probabilities(images):
    logits = forward.eval_step(
        state, {'image': images, 'label': None, 'mask': None},
        model=model, tta=tta)['logits']
    return jax.nn.softmax(logits / temperature, axis=-1)

  return probabilities


def check_images(image_size: int, count: int = 4) -> np.ndarray:
  """Random uint8 photos on which an export is compared with the model."""
  return np.random.default_rng(0).integers(
      0, 256, (count, image_size, image_size, 3), dtype=np.uint8)


def _input_spec(image_size: int):
  shape = jax.export.symbolic_shape(f'batch, {image_size}, {image_size}, 3')
  return jax.ShapeDtypeStruct(shape, jnp.uint8)


def to_stablehlo(fn, meta: dict) -> bytes:
  """A zip of metadata.json and the serialized jax.export.Exported, whose
  batch dimension is symbolic."""
  program = jax.export.export(jax.jit(fn), platforms=STABLEHLO_PLATFORMS)(
      _input_spec(meta['image_size']))
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as archive:
    archive.writestr(exported.METADATA_FILE, json.dumps(meta, indent=2))
    archive.writestr(exported.EXPORTED_FILE, bytes(program.serialize()))
  return buffer.getvalue()


def to_onnx(fn, meta: dict) -> bytes:
  """An ONNX model (dynamic batch) whose metadata_props hold `meta`, one
  JSON-encoded value per key."""
  try:
    import jax2onnx  # pylint: disable=g-import-not-at-top
    import onnx  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ExportError(f'ONNX export needs {e.name}: {_ONNX_INSTALL}') from None
  # It warns, with a traceback each, of its optional plugins for equinox
  # and dm_pix, libraries skinjax does not use.
  logging.getLogger('jax2onnx.plugins.plugin_system').setLevel(logging.ERROR)
  try:
    model = jax2onnx.to_onnx(fn, [_input_spec(meta['image_size'])],
                             model_name=meta['model'],
                             input_names=[exported.INPUT_NAME],
                             output_names=[exported.OUTPUT_NAME])
  except Exception as e:  # pylint: disable=broad-except
    # Its plugins raise many types for what they do not translate.
    raise ExportError(f'jax2onnx cannot convert {meta["model"]}: '
                      f'{type(e).__name__}: {_first_line(e)}') from e
  # jax2onnx 0.17 leaves NHWC shapes on values its layout pass made NCHW,
  # and onnxruntime refuses a graph whose shapes disagree. They are hints:
  # dropped, then inferred again (strictly) by onnx and the model checked.
  del model.graph.value_info[:]
  model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
  onnx.checker.check_model(model, full_check=True)
  for key, value in meta.items():
    model.metadata_props.add(key=key, value=json.dumps(value))
  model.producer_name = 'skinjax'
  model.producer_version = meta['skinjax_version']
  return model.SerializeToString()


def _first_line(error) -> str:
  lines = str(error).strip().splitlines()
  return lines[0][:300] if lines else ''


_CONVERTERS = {'onnx': to_onnx, 'stablehlo': to_stablehlo}


def export(config, workdir: str, fmt: str, output: str, *,
           checkpoint: str = 'best', weights: str = 'raw') -> dict:
  """Writes the export of checkpoint `checkpoint` of the run in `workdir`
  (from the run folder alone) in format `fmt` to `output` (atomically),
  once it matches the JAX model (in its usual forms) within TOLERANCE on
  check_images, and its model card beside it; returns its metadata."""
  if fmt not in _CONVERTERS:
    raise ExportError(f'format {fmt!r}: use one of {", ".join(FORMATS)}')
  folder = os.path.dirname(os.path.abspath(output))
  if not os.path.isdir(folder) or os.path.isdir(output):
    raise ExportError(f'--output={output}: not a file in an existing folder')
  meta = write(config, restore.load(config, workdir, checkpoint, weights),
               fmt, output)
  model_card.write(card_path(output), workdir, config.to_dict(),
                   checkpoint_step=meta['checkpoint_step'],
                   weights=meta['weights'],
                   artifact={'file': os.path.basename(output), 'format': fmt})
  return meta


def card_path(output: str) -> str:
  """The model card `export` writes beside `output`."""
  return os.path.join(os.path.dirname(os.path.abspath(output)),
                      model_card.FILE)


def write(config, checkpoint: restore.Checkpoint, fmt: str,
          output: str) -> dict:
  """Writes the export of a calibrated `checkpoint` (see `export`)."""
  meta = metadata(config, checkpoint)
  with progress.bar(total=3, desc=f'{fmt} export', unit='stage') as shown:
    shown.set_postfix_str('converting')
    data = _CONVERTERS[fmt](
        probabilities_fn(checkpoint, config.evaluation.tta), meta)
    shown.update()
    shown.set_postfix_str('checking: the export')
    images = check_images(meta['image_size'])
    got = exported.from_bytes(data, output).probabilities(images)
    shown.update()
    shown.set_postfix_str('checking: the model')
    want = np.asarray(jax.jit(probabilities_fn(
        checkpoint, config.evaluation.tta, config.model.layer_forms))(images))
    shown.update()
  difference = float(np.abs(got - want).max())
  if not difference <= TOLERANCE:
    raise ExportError(f'the {fmt} export differs from the model by '
                      f'{difference:.2g} (> {TOLERANCE}); nothing written')
  atomic.write_bytes(output, data)
  return meta
