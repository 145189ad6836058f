"""Decoding one photo as every prepared dataset stores it: EXIF-rotated,
8-bit RGB from any mode, short side at most `max_short_side`, JPEG.

Only photo formats are parsed, and a photo's pixel count is checked from its
header before any pixel is decoded, so a hostile file costs no more memory
than the largest photo allowed (about 12 bytes per pixel at the worst, RGBA
and float images; 4 for an RGB JPEG).
"""

import hashlib
import io
import warnings

import numpy as np
from PIL import Image
from PIL import ImageOps

# Of the stored JPEGs, unless a dataset's preparation settings say otherwise.
JPEG_QUALITY = 90
# The formats cameras, dermatoscopes and scanners write (JPEG includes MPO,
# phones' multi-picture JPEG). A file in any other format PIL knows (EPS,
# which would run Ghostscript, PSD, ICO, ...) is refused unparsed.
IMAGE_FORMATS = ('JPEG', 'PNG', 'TIFF', 'WEBP', 'BMP', 'GIF')
# Photos with more pixels are refused from their header, undecoded: 50 Mpx
# holds full-frame clinical cameras and phones' full-resolution modes, and
# decodes in at most ~600 MB (config: dataset.max_image_pixels).
MAX_IMAGE_PIXELS = 50_000_000
# PIL itself refuses larger images as decompression bombs, whatever the limit.
PIL_PIXEL_CEILING = 2 * Image.MAX_IMAGE_PIXELS
# Rows of high-bit images are scaled this many pixels at a time, so no
# float64 copy of a whole large image is ever held.
_SCALED_BLOCK_PIXELS = 1 << 20


class BadImageError(ValueError):
  pass


def to_rgb(image: Image.Image) -> Image.Image:
  """8-bit RGB from any PIL mode: 16-bit, float, CMYK, palette, grey, alpha.

  Integer images of more than 8 bits are scaled by the range their values
  fit in (10, 12, 14 or 16 bits: a 12-bit sensor's data stored as 16-bit
  keeps its brightness), float images in [0, 1] by 1 and others likewise by
  the bit range of their maximum.
  """
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
    image = Image.fromarray(_to_8_bit(np.asarray(image), image.mode))
  if image.mode == 'P':
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
    rgba = image if image.mode == 'RGBA' else image.convert('RGBA')
    image = Image.alpha_composite(
        Image.new('RGBA', image.size, (255, 255, 255, 255)), rgba)
  return image if image.mode == 'RGB' else image.convert('RGB')


def _to_8_bit(values: np.ndarray, mode: str) -> np.ndarray:
  """uint8 of a one-channel image scaled by its full scale, block by block
  of rows (the same arithmetic as the whole at once, in bounded memory)."""
  scale = _full_scale(mode, values)
  scaled = np.empty(values.shape, np.uint8)
  rows = max(1, _SCALED_BLOCK_PIXELS // max(1, values.shape[1]))
  for start in range(0, len(values), rows):
    block = values[start:start + rows].astype(np.float64)
    scaled[start:start + rows] = np.clip(block / scale * 255, 0, 255).round()
  return scaled


def _full_scale(mode: str, values: np.ndarray) -> float:
  """The value that stands for full brightness."""
  peak = float(values.max()) if values.size else 0.0
  if mode == 'F' and peak <= 1.0:
    return 1.0
  for bits in (8, 10, 12, 14):
    if peak <= 2**bits - 1:
      return 2.0**bits - 1
  return 65535.0


def _check_pixels(size, max_pixels: int) -> None:
  """Refuses, from the header, a photo too large to decode."""
  width, height = size
  if width * height > max_pixels:
    raise Image.DecompressionBombError(
        f'{width}x{height} = {width * height / 1e6:.1f} Mpx, more than '
        f'dataset.max_image_pixels = {max_pixels / 1e6:g} Mpx; not decoded')


def _open(data: bytes) -> Image.Image:
  """The photo, its header read and no pixel decoded; PIL's errors."""
  with warnings.catch_warnings():
    # PIL warns from 89 Mpx; the limit that counts is `max_pixels`.
    warnings.simplefilter('ignore', Image.DecompressionBombWarning)
    return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)


def pixel_count(data: bytes) -> int:
  """Width times height from the photo's header, nothing decoded (0 for
  bytes that are not a photo, which decoding refuses with its reason)."""
  try:
    width, height = _open(data).size
  except (Image.DecompressionBombError, OSError, SyntaxError, ValueError):
    return 0
  return width * height


def normalise_image(data: bytes, max_short_side: int, quality: int, *,
                    max_pixels: int):
  """JPEG bytes of the upright RGB image, short side <= max; pixel digest.

  Raises BadImageError with the reason for files that are not usable
  images: none of IMAGE_FORMATS, more than `max_pixels` pixels (known from
  the header, before decoding), corrupt.
  """
  if not data:
    raise BadImageError('empty file')
  try:
    image = _open(data)
    _check_pixels(image.size, max_pixels)
    image.load()
    ImageOps.exif_transpose(image, in_place=True)
    image = to_rgb(image)
  except Image.DecompressionBombError as e:
    raise BadImageError(f'too many pixels: {e}') from None
  except Image.UnidentifiedImageError:
    raise BadImageError('not an image in a supported format ('
                        f"{', '.join(IMAGE_FORMATS)})") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise BadImageError(f'corrupt or truncated: {e}') from None
  width, height = image.size
  if min(width, height) > max_short_side:
    factor = max_short_side / min(width, height)
    image = image.resize((max(1, round(width * factor)),
                          max(1, round(height * factor))),
                         Image.Resampling.LANCZOS, reducing_gap=3.0)
  pixels = np.asarray(image)
  digest = hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes())
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=quality)
  return buffer.getvalue(), digest.hexdigest()
