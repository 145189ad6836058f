"""One DICOM instance checked, from its header, before a pixel is decoded,
then decoded one frame at a time into a lossless photo (PNG) that the run's
preparation Recipe normalises like any photo file.

Only colour photographs are scored: the SOP classes of visible-light and
dermoscopic photography and of Secondary Capture, in RGB or YCbCr. The same
bounds as photos hold before decoding (decode.py, files.py): each frame's
pixels against `max_pixels`, the pixel bytes that must be present for
uncompressed data, and for compressed data the size it declares against
the bytes actually there (a decompression bomb is refused undecoded).

Error messages are written here, never copied from pydicom or a codec:
theirs may quote an element's value, and values may be patient data.
"""

import dataclasses
import io
import logging
import warnings
from typing import Any

import numpy as np
from PIL import Image

from skinjax.data.prepare import decode
from skinjax.data.prepare import files

# Byte 128 of a DICOM Part 10 file starts this marker (the preamble).
MAGIC_OFFSET = 128
MAGIC = b'DICM'
SUFFIX = '.dcm'
# {SOP Class UID: name}: colour photographs (pydicom.uid's names).
SOP_CLASSES = {
    '1.2.840.10008.5.1.4.1.1.77.1.4': 'VL Photographic Image Storage',
    '1.2.840.10008.5.1.4.1.1.77.1.7': 'Dermoscopic Photography Image Storage',
    '1.2.840.10008.5.1.4.1.1.7': 'Secondary Capture Image Storage',
    '1.2.840.10008.5.1.4.1.1.7.4':
        'Multi-frame True Color Secondary Capture Image Storage',
}
# Colour photometric interpretations; YBR_ICT and YBR_RCT are JPEG 2000's.
PHOTOMETRIC = ('RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT')
# More frames than this in one instance is a video, not photographs.
MAX_FRAMES = 100
INSTALL = "DICOM support is not installed: pip install 'skinjax[dicom]'"


class DicomRefused(decode.BadImageError):
  """A DICOM instance that is not a colour photograph skinjax can score;
  the message says why in one line (never an element's value)."""


def looks_like_dicom(head: bytes) -> bool:
  """Whether these first bytes of a file are a DICOM Part 10 preamble."""
  return head[MAGIC_OFFSET:MAGIC_OFFSET + len(MAGIC)] == MAGIC


def is_dicom_name(name: str, head_of=None) -> bool:
  """A file is DICOM by a .dcm suffix, or, without any suffix, by its
  preamble (`head_of()`: the file's first bytes; None: not looked at)."""
  base = name.rsplit('/', 1)[-1]
  if base.lower().endswith(SUFFIX):
    return True
  return '.' not in base and head_of is not None and looks_like_dicom(
      head_of())


def is_dicom_path(path: str) -> bool:
  """is_dicom_name for a file on disk, reading its preamble if needed."""
  def head():
    try:
      with open(path, 'rb') as f:
        return f.read(MAGIC_OFFSET + len(MAGIC))
    except OSError:
      return b''
  return is_dicom_name(path, head)


@dataclasses.dataclass(frozen=True)
class Instance:
  """A checked instance: its UIDs (how results are tied back to it), its
  frames, and the dataset itself (patient data included: never logged)."""
  sop_class_uid: str
  sop_instance_uid: str
  study_instance_uid: str
  series_instance_uid: str
  frames: int
  rows: int
  columns: int
  dataset: Any = dataclasses.field(repr=False)

  def reference(self, frame: int) -> dict:
    """What a result row carries to name its instance and frame."""
    return {'sop_class_uid': self.sop_class_uid,
            'sop_instance_uid': self.sop_instance_uid,
            'study_instance_uid': self.study_instance_uid,
            'series_instance_uid': self.series_instance_uid,
            'frame': frame}


def _pydicom():
  try:
    import pydicom  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise DicomRefused(INSTALL) from None
  # Values that break the standard are read as they are, silently: a
  # warning about one would print it, and it may be a patient's name; and
  # pydicom's log lines about a damaged file are left to its refusal here.
  pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
  logging.getLogger('pydicom').setLevel(logging.CRITICAL)
  return pydicom


def _read(data: bytes, header_only: bool):
  pydicom = _pydicom()
  if not data:
    raise DicomRefused('empty file')
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      return pydicom.dcmread(io.BytesIO(data),
                             stop_before_pixels=header_only)
  except Exception as e:  # pydicom raises many kinds for a damaged file
    raise DicomRefused('not a readable DICOM file '
                       f'({type(e).__name__})') from None


def _code(value) -> str:
  """A coded string of the header, short and printable, for a message."""
  text = str(value or '')[:64]
  return ''.join(c if c.isprintable() else '?' for c in text) or 'none'


def _frames(ds) -> int:
  try:
    return int(ds.get('NumberOfFrames') or 1)
  except (TypeError, ValueError):
    raise DicomRefused('NumberOfFrames is not a number') from None


def _check_kind(ds) -> None:
  """Refuses what is not a colour photograph, naming what it is."""
  sop_class = str(ds.get('SOPClassUID', ''))
  if not sop_class:
    raise DicomRefused('no SOP Class UID: not a DICOM image')
  if sop_class not in SOP_CLASSES:
    name = _pydicom().uid.UID(sop_class).name
    raise DicomRefused(f'a {_code(name)} instance, not a photograph '
                       f"(scored: {', '.join(SOP_CLASSES.values())})")
  photometric = _code(ds.get('PhotometricInterpretation'))
  samples = ds.get('SamplesPerPixel')
  if photometric not in PHOTOMETRIC or samples != 3:
    raise DicomRefused(f'photometric interpretation {photometric} with '
                       f'{_code(samples)} samples per pixel: only colour '
                       f"photos ({', '.join(PHOTOMETRIC)}) are scored")
  if ds.get('BitsAllocated') != 8:
    raise DicomRefused(f"{_code(ds.get('BitsAllocated'))} bits allocated: "
                       'only 8-bit colour photos are scored')


def _check_size(ds, rows: int, columns: int, frames: int,
                max_pixels: int) -> None:
  """Refuses, from the header and the bytes present, pixel data too large
  to decode: a frame over `max_pixels`, too many frames, uncompressed data
  shorter than declared, compressed data declaring far more than it holds."""
  if rows < 1 or columns < 1:
    raise DicomRefused(f'{columns}x{rows} pixels: no image')
  if not 1 <= frames <= MAX_FRAMES:
    raise DicomRefused(f'{frames} frames: 1 to {MAX_FRAMES} are scored')
  try:
    decode._check_pixels((columns, rows), max_pixels)  # pylint: disable=protected-access
  except Image.DecompressionBombError as e:
    raise DicomRefused(f'too many pixels in each frame: {e}') from None
  declared = rows * columns * 3 * frames
  present = len(ds.PixelData)
  transfer_syntax = ds.file_meta.TransferSyntaxUID
  if not transfer_syntax.is_compressed:
    per_pixel = 2 if ds.PhotometricInterpretation == 'YBR_FULL_422' else 3
    if present < rows * columns * per_pixel * frames:
      raise DicomRefused(f'pixel data of {present:,} bytes, less than its '
                         f'{frames} frame(s) of {columns}x{rows} need')
  elif (declared > files.RATIO_CHECKED_ABOVE
        and declared > files.MAX_ZIP_RATIO * present):
    raise DicomRefused(
        f'{frames} frame(s) of {columns}x{rows} ({declared:,} bytes) from '
        f'{present:,} bytes of compressed pixel data, more than '
        f'{files.MAX_ZIP_RATIO} times: refused undecoded')


def _check_decoder(ds) -> None:
  pydicom = _pydicom()
  transfer_syntax = ds.file_meta.get('TransferSyntaxUID')
  if transfer_syntax is None:
    raise DicomRefused('no transfer syntax in the file meta information')
  try:
    available = pydicom.pixels.get_decoder(transfer_syntax).is_available
  except NotImplementedError:
    available = False
  if not available:
    raise DicomRefused(f'transfer syntax {_code(transfer_syntax.name)}: no '
                       'decoder for it is installed')


def parse(data: bytes, max_pixels: int) -> Instance:
  """The instance in `data`, checked from its header and the size of its
  pixel data, nothing decoded; raises DicomRefused with the reason."""
  ds = _read(data, header_only=False)
  _check_kind(ds)
  if 'PixelData' not in ds:
    raise DicomRefused('no pixel data')
  _check_decoder(ds)
  rows, columns = int(ds.get('Rows') or 0), int(ds.get('Columns') or 0)
  frames = _frames(ds)
  _check_size(ds, rows, columns, frames, max_pixels)
  uids = [str(ds.get(k, '')) for k in ('SOPInstanceUID', 'StudyInstanceUID',
                                       'SeriesInstanceUID')]
  if not all(uids):
    raise DicomRefused('no SOP, Study or Series Instance UID')
  return Instance(str(ds.SOPClassUID), *uids, frames=frames, rows=rows,
                  columns=columns, dataset=ds)


def pixel_count(data: bytes) -> int:
  """Pixels of all the instance's frames from its header, nothing decoded
  (0 for bytes that are not a readable DICOM file: parse refuses them with
  the reason)."""
  try:
    ds = _read(data, header_only=True)
    return int(ds.get('Rows') or 0) * int(ds.get('Columns') or 0) * _frames(
        ds)
  except DicomRefused:
    return 0


def frame_photo(instance: Instance, frame: int) -> bytes:
  """Frame `frame` (1-based) decoded to 8-bit RGB, as lossless PNG bytes;
  raises DicomRefused when its pixel data cannot be decoded."""
  pydicom = _pydicom()
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      pixels = pydicom.pixels.pixel_array(instance.dataset, index=frame - 1)
  except Exception as e:  # codecs raise many kinds for damaged data
    raise DicomRefused(f'frame {frame}: pixel data could not be decoded '
                       f'({type(e).__name__})') from None
  pixels = np.asarray(pixels)
  if pixels.shape != (instance.rows, instance.columns, 3):
    raise DicomRefused(f'frame {frame}: decoded to {pixels.shape}, not '
                       f'{instance.rows}x{instance.columns} RGB')
  buffer = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8), 'RGB').save(
      buffer, format='PNG', compress_level=1)
  return buffer.getvalue()


def identity(data: bytes) -> dict:
  """The UIDs of the instance in `data` from its header ({} when it has
  none or cannot be read): how a refused instance is named in an answer."""
  try:
    ds = _read(data, header_only=True)
  except DicomRefused:
    return {}
  keys = {'sop_class_uid': 'SOPClassUID', 'sop_instance_uid':
          'SOPInstanceUID', 'study_instance_uid': 'StudyInstanceUID',
          'series_instance_uid': 'SeriesInstanceUID'}
  return {name: _code(ds.get(key)) for name, key in keys.items()
          if ds.get(key)}
