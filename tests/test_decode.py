"""Decoding as preparation stores photos: high-bit and float images keep
their brightness; only photo formats are parsed, and only photos within the
pixel limit decoded."""

import io

import numpy as np
from PIL import Image
import pytest

import image_trees
from skinjax.data.prepare import decode


def _stored(array, fmt):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt)
  jpeg, _ = decode.normalise_image(buffer.getvalue(), 256, 95,
                                   max_pixels=decode.MAX_IMAGE_PIXELS)
  return np.asarray(Image.open(io.BytesIO(jpeg)).convert('L'), np.float64)


@pytest.mark.parametrize('array, fmt', [
    (np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64), 'TIFF'),
    (np.linspace(0, 4095, 64 * 64).astype(np.uint16).reshape(64, 64), 'PNG'),
    (np.linspace(0, 1023, 64 * 64).astype(np.uint16).reshape(64, 64), 'PNG'),
    (np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64), 'PNG'),
    (np.linspace(0, 255, 64 * 64).astype(np.uint8).reshape(64, 64), 'PNG'),
])
def test_a_ramp_to_full_scale_stays_a_ramp_to_white(array, fmt):
  """0 .. the format's or the bit depth's full scale becomes 0 .. 255 (a
  12-bit sensor's values in a 16-bit file, floats in [0, 1])."""
  stored = _stored(array, fmt)
  assert stored.min() <= 3 and stored.max() >= 250
  assert abs(stored.mean() - 127.5) < 4


def test_a_ramp_taller_than_a_scaled_block_is_scaled_as_one():
  """High-bit images are scaled a block of rows at a time: the blocks join
  into what scaling the whole image gives."""
  ramp = np.linspace(0, 4095, 1500 * 1000).astype(np.uint16).reshape(1500,
                                                                     1000)
  scaled = np.asarray(decode.to_rgb(Image.fromarray(ramp)))
  expected = np.clip(ramp / 4095 * 255, 0, 255).round().astype(np.uint8)
  np.testing.assert_array_equal(scaled, np.repeat(expected[..., None], 3, -1))


def _reason(data, max_pixels=decode.MAX_IMAGE_PIXELS):
  with pytest.raises(decode.BadImageError) as error:
    decode.normalise_image(data, 256, 95, max_pixels=max_pixels)
  return str(error.value)


def test_too_many_pixels_are_refused_from_the_header_before_decoding():
  """A 100 Mpx PNG of 97 KB (under PIL's own limit) is refused by the
  default limit; a header whose pixels are garbage is refused for its size,
  not for the garbage, so its pixels were never decoded."""
  assert _reason(image_trees.pixel_bomb(10_000, 10_000)) == (
      'too many pixels: 10000x10000 = 100.0 Mpx, more than '
      'dataset.max_image_pixels = 50 Mpx; not decoded')
  garbage = image_trees.decompression_bomb(side=2000)
  assert _reason(garbage, max_pixels=10**6).startswith('too many pixels: '
                                                       '2000x2000 = 4.0 Mpx')
  assert _reason(garbage, max_pixels=10**7).startswith('corrupt or truncated')
  assert _reason(image_trees.decompression_bomb()).startswith(
      'too many pixels')  # beyond PIL's own limit whatever ours is
  image, _ = decode.normalise_image(image_trees.pixel_bomb(2000, 2000), 256,
                                    95, max_pixels=4_000_000)
  assert Image.open(io.BytesIO(image)).size == (256, 256)  # at the limit


@pytest.mark.parametrize('fmt', decode.IMAGE_FORMATS)
def test_every_photo_format_is_read(fmt):
  data = image_trees.encode(image_trees.photo(0), fmt)
  image, _ = decode.normalise_image(data, 256, 95,
                                    max_pixels=decode.MAX_IMAGE_PIXELS)
  assert Image.open(io.BytesIO(image)).size == (40, 30)


@pytest.mark.parametrize('fmt', ['PPM', 'TGA', 'PCX', 'ICO', 'EPS'])
def test_formats_that_are_no_photo_format_are_never_parsed(fmt):
  """Each of these PIL would open (EPS through Ghostscript); saved under a
  photo's name, it is refused unparsed."""
  data = image_trees.encode(image_trees.photo(0), fmt)
  Image.open(io.BytesIO(data))  # PIL knows the format
  assert _reason(data) == ('not an image in a supported format (JPEG, PNG, '
                           'TIFF, WEBP, BMP, GIF)')
