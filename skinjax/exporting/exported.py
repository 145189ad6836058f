"""A model exported by `python -m skinjax.export`, loaded and scoring
photos, as a clinic's integration would:

  model = exported.load('model.onnx')  # or a StableHLO export (a zip)
  images = np.stack([exported.prepare(path, model.metadata) for path in paths])
  probabilities = model.probabilities(images)  # [photos, classes]

ONNX needs onnxruntime, StableHLO only jax. Without skinjax the same takes a
few lines more: the metadata says how photos are prepared, and an ONNX
model's metadata_props (a StableHLO zip's metadata.json) hold it.
"""

import dataclasses
import io
import json
from typing import Callable
import zipfile

import jax
import numpy as np

from skinjax import errors
from skinjax.inference import preparation

FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = 'images', 'probabilities'
# The members of a StableHLO export (a zip file).
METADATA_FILE, EXPORTED_FILE = 'metadata.json', 'model.jax_exported'
_ZIP_MAGIC = b'PK\x03\x04'
# What a StableHLO zip may inflate to: metadata.json at most 1 MiB, any
# member at most _MAX_RATIO times its compressed bytes (skinjax stores them
# uncompressed; weights hardly compress), and all of them together at most
# _MAX_RATIO times the file. A zip bomb is refused before it fills memory.
_MAX_METADATA_BYTES = 1 << 20
_MAX_RATIO = 20


class ExportedModelError(errors.UserError):
  """A file that is not a usable skinjax export, or input it cannot take;
  the message names the file or the input."""


@dataclasses.dataclass(frozen=True)
class ExportedModel:
  metadata: dict  # see skinjax.exporting.writer.metadata
  format: str  # 'onnx' or 'stablehlo'
  run: Callable  # uint8 images -> probabilities, unchecked

  def probabilities(self, images) -> np.ndarray:
    """Calibrated probabilities [batch, classes] of uint8 RGB images
    [batch, size, size, 3] prepared as `prepare` does."""
    images = np.asarray(images)
    size = self.metadata['image_size']
    if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
      raise ExportedModelError(
          f'images: expected uint8 [batch, {size}, {size}, 3], got '
          f'{images.dtype} {list(images.shape)}')
    return np.asarray(self.run(images), np.float32)


def load(path: str) -> ExportedModel:
  """The export in `path`, ONNX or StableHLO (told apart by content)."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise ExportedModelError(f'{path}: {e.strerror or e}') from None
  return from_bytes(data, path)


def from_bytes(data: bytes, name: str) -> ExportedModel:
  """As `load`, from the bytes of a file called `name` (for messages)."""
  if data[:4] == _ZIP_MAGIC:
    return _stablehlo(data, name)
  return _onnx(data, name)


def _checked(meta, name: str) -> dict:
  if not isinstance(meta, dict) or 'format_version' not in meta:
    raise ExportedModelError(f'{name}: not a skinjax export (no metadata)')
  if meta['format_version'] != FORMAT_VERSION:
    raise ExportedModelError(
        f"{name}: export format_version {meta['format_version']}; this "
        f'skinjax reads {FORMAT_VERSION}')
  return meta


def _stablehlo(data: bytes, name: str) -> ExportedModel:
  try:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
      budget = _MAX_RATIO * len(data) + _MAX_METADATA_BYTES
      meta = _inflate(archive, METADATA_FILE, name, budget)
      serialized = _inflate(archive, EXPORTED_FILE, name, budget - len(meta))
      meta = json.loads(meta)
  except (zipfile.BadZipFile, KeyError, json.JSONDecodeError,
          EOFError) as e:
    raise ExportedModelError(f'{name}: not a readable StableHLO export '
                             f'({e})') from None
  except (NotImplementedError, RuntimeError):  # a method zipfile lacks, a
    # password: neither is in an export skinjax wrote
    raise ExportedModelError(f'{name}: a member is encrypted or compressed '
                             'in a way skinjax exports never are') from None
  meta = _checked(meta, name)
  try:
    program = jax.export.deserialize(serialized)
  except Exception as e:  # a damaged flatbuffer raises many types
    raise ExportedModelError(f'{name}: {EXPORTED_FILE} does not deserialize '
                             f'({type(e).__name__})') from None
  return ExportedModel(meta, 'stablehlo', jax.jit(program.call))


def _inflate(archive: zipfile.ZipFile, member: str, name: str,
             budget: int) -> bytearray:
  """The member's bytes, refused once it would inflate past its bound or
  the `budget` left: checked on the size the zip declares, then again while
  reading, since a crafted zip can declare anything."""
  info = archive.getinfo(member)
  limit = min(budget, _MAX_METADATA_BYTES if member == METADATA_FILE
              else max(_MAX_METADATA_BYTES, _MAX_RATIO * info.compress_size))
  too_big = lambda size: ExportedModelError(
      f'{name}: {member} inflates to {size} bytes from '
      f'{info.compress_size} (over the {limit} allowed); not an export '
      'skinjax wrote')
  if info.file_size > limit:
    raise too_big(info.file_size)
  content = bytearray()
  with archive.open(info) as f:
    while chunk := f.read(1 << 20):
      content += chunk
      if len(content) > limit:
        raise too_big(f'over {len(content)}')
  return content


def _onnx(data: bytes, name: str) -> ExportedModel:
  try:
    import onnxruntime  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ExportedModelError(f"{name}: running an ONNX export needs "
                             "onnxruntime (pip install -e '.[export]')"
                             ) from None
  try:
    session = onnxruntime.InferenceSession(
        data, providers=onnxruntime.get_available_providers())
  except Exception as e:  # onnxruntime's errors have no common base
    raise ExportedModelError(f'{name}: not a readable ONNX model ('
                             f'{str(e).splitlines()[0][:200]})') from None
  try:
    meta = {key: json.loads(value) for key, value in
            session.get_modelmeta().custom_metadata_map.items()}
  except json.JSONDecodeError:
    meta = None
  meta = _checked(meta, name)
  return ExportedModel(
      meta, 'onnx',
      lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images})[0])


def recipe(metadata: dict) -> preparation.Recipe:
  """The preparation recipe an export's metadata records."""
  steps = metadata['input']['preparation']
  return preparation.Recipe(
      max_short_side=steps['max_short_side'],
      jpeg_quality=steps['jpeg_quality'],
      max_image_pixels=steps['max_image_pixels'],
      image_size=metadata['image_size'], crop_fraction=steps['crop_fraction'])


def prepare(path: str, metadata: dict) -> np.ndarray:
  """One photo file as the export's input expects it (uint8 [size, size,
  3]), prepared as predict prepares it; raises decode.BadImageError,
  files.FileTooLarge or OSError when the file cannot be used."""
  photo_recipe = recipe(metadata)
  return photo_recipe.model_input(photo_recipe.read(path))
