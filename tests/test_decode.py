"""Decoding as preparation stores photos: high-bit and float images keep
their brightness."""

import io

import numpy as np
from PIL import Image
import pytest

from skinjax.data.prepare import decode


def _stored(array, fmt):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt)
  jpeg, _ = decode.normalise_image(buffer.getvalue(), 256, 95)
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
