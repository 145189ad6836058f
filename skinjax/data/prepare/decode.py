"""Decoding one photo as every prepared dataset stores it: EXIF-rotated,
8-bit RGB from any mode, short side at most `max_short_side`, JPEG."""

import hashlib
import io

import numpy as np
from PIL import Image
from PIL import ImageOps

# Of the stored JPEGs, unless a dataset's preparation settings say otherwise.
JPEG_QUALITY = 90


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
    values = np.asarray(image, np.float64)
    image = Image.fromarray(np.clip(values / _full_scale(image.mode, values)
                                    * 255, 0, 255).round().astype(np.uint8))
  if image.mode == 'P':
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
    background = Image.new('RGBA', image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, image.convert('RGBA'))
  return image.convert('RGB')


def _full_scale(mode: str, values: np.ndarray) -> float:
  """The value that stands for full brightness."""
  peak = float(values.max()) if values.size else 0.0
  if mode == 'F' and peak <= 1.0:
    return 1.0
  for bits in (8, 10, 12, 14):
    if peak <= 2**bits - 1:
      return 2.0**bits - 1
  return 65535.0


def normalise_image(data: bytes, max_short_side: int, quality: int):
  """JPEG bytes of the upright RGB image, short side <= max; pixel digest.

  Raises BadImageError with the reason for files that are not usable images.
  """
  if not data:
    raise BadImageError('empty file')
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
    image = to_rgb(ImageOps.exif_transpose(image))
  except Image.DecompressionBombError as e:
    raise BadImageError(f'too many pixels: {e}') from None
  except Image.UnidentifiedImageError:
    raise BadImageError('not an image') from None
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
