"""Decoding and augmentation ops on images whose content we control."""

import io

import numpy as np
from PIL import Image
import pytest

from skinjax.data import preprocess


def _encode(array, fmt='PNG', mode=None, **kwargs):
  buffer = io.BytesIO()
  image = Image.fromarray(array)
  if mode:
    image = image.convert(mode)
  image.save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


def _quadrants(size=64):
  """Red, green, blue and white quadrants."""
  image = np.zeros((size, size, 3), np.uint8)
  h = size // 2
  image[:h, :h] = (255, 0, 0)
  image[:h, h:] = (0, 255, 0)
  image[h:, :h] = (0, 0, 255)
  image[h:, h:] = (255, 255, 255)
  return image


def test_center_crop_keeps_the_centre():
  image = np.zeros((100, 60, 3), np.uint8)
  image[20:80] = 200  # the central 60x60 square is bright, the rest dark
  out = preprocess.center_crop(preprocess.open_image(_encode(image)), 30, 1.0)
  assert out.shape == (30, 30, 3) and out.dtype == np.uint8
  # The resampling filter reaches one source pixel past the box at the edge.
  assert out[1:-1].min() == 200 and out.min() > 150


def test_center_crop_fraction_zooms_in():
  out = preprocess.center_crop(preprocess.open_image(_encode(_quadrants())),
                               8, 0.5)
  np.testing.assert_array_equal(out[0, 0], (255, 0, 0))
  np.testing.assert_array_equal(out[-1, -1], (255, 255, 255))


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P', 'CMYK'])
def test_any_colour_mode_becomes_rgb(mode):
  fmt = 'JPEG' if mode == 'CMYK' else 'PNG'
  data = _encode(_quadrants(), fmt=fmt, mode=mode)
  out = preprocess.center_crop(preprocess.open_image(data), 16, 1.0)
  assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_jpeg_draft_decoding_matches_full_decoding():
  """Decoding a JPEG region at reduced DCT scale gives the same small image as
  decoding the same pixels in full (PNG has no reduced decoding)."""
  coarse = np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)
  smooth = Image.fromarray(coarse).resize((512, 512), Image.Resampling.BICUBIC)
  jpeg = _encode(np.asarray(smooth), fmt='JPEG', quality=95)
  png = _encode(np.asarray(Image.open(io.BytesIO(jpeg)).convert('RGB')))
  box = (96, 32, 352, 288)  # 256 x 256, decoded to 32 x 32: 1/8 scale
  drafted = preprocess._decode_region(preprocess.open_image(jpeg), box, 32)
  full = preprocess._decode_region(preprocess.open_image(png), box, 32)
  shifted = preprocess._decode_region(
      preprocess.open_image(png), tuple(v + 16 for v in box), 32)
  assert np.abs(drafted.astype(int) - full).mean() < 2
  assert np.abs(shifted.astype(int) - full).mean() > 10  # the check can fail


def test_random_resized_crop_respects_scale():
  rng = np.random.default_rng(0)
  image = preprocess.open_image(_encode(_quadrants(64)))
  # A crop of at most 1% of the area can touch at most two quadrants' colours
  # near the middle, and usually only one.
  single = 0
  for _ in range(20):
    out = preprocess.random_resized_crop(image, rng, 16, (0.005, 0.01),
                                         (1.0, 1.0))
    assert out.shape == (16, 16, 3)
    single += len(np.unique(out.reshape(-1, 3), axis=0)) <= 4
  assert single >= 15
  whole = preprocess.random_resized_crop(image, rng, 16, (1.0, 1.0), (1.0, 1.0))
  np.testing.assert_array_equal(
      whole, preprocess.center_crop(image, 16, 1.0))


def test_flip_and_rotate_yields_every_symmetry_and_nothing_else():
  image = _quadrants(4)
  rng = np.random.default_rng(0)
  seen = {preprocess.flip_and_rotate(image, rng, True, True, True).tobytes()
          for _ in range(200)}
  expected = {np.rot90(f, k).tobytes() for f in (image, image[:, ::-1])
              for k in range(4)}
  assert seen == expected
  same = preprocess.flip_and_rotate(image, rng, False, False, False)
  np.testing.assert_array_equal(same, image)


def test_colour_jitter_is_mild_and_off_when_zero():
  image = np.random.default_rng(1).integers(30, 220, (8, 8, 3)).astype(np.uint8)
  rng = np.random.default_rng(0)
  assert preprocess.colour_jitter(image, rng, 0, 0, 0) is image
  out = preprocess.colour_jitter(image, rng, 0.1, 0.1, 0.1)
  assert out.dtype == np.uint8
  change = np.abs(out.astype(int) - image).mean()
  assert 0 < change < 40
