"""Decoding and augmentation of single images, as pure numpy/PIL functions.

Images leave here as uint8 HxWx3: normalisation happens inside the model, on
the accelerator, so a quarter of the bytes cross to the device and the
constants travel with the weights they belong to.
"""

import io
import math

import numpy as np
from PIL import Image


def open_image(data: bytes) -> Image.Image:
  """Opens encoded image bytes lazily; decoding happens on first pixel access."""
  return Image.open(io.BytesIO(data))


def _decode_region(image: Image.Image, box, size: int) -> np.ndarray:
  """Crops `box` (left, top, right, bottom) and resizes it to size x size.

  For JPEGs, `draft` lets the decoder skip detail the resize would throw away
  (DCT scaling by 1/2, 1/4 or 1/8), which makes big photos cheap to decode.
  """
  width, height = image.size
  crop_w, crop_h = box[2] - box[0], box[3] - box[1]
  if image.format == 'JPEG':
    image.draft('RGB', (math.ceil(width * size / crop_w),
                        math.ceil(height * size / crop_h)))
  sx, sy = image.size[0] / width, image.size[1] / height
  box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
  if image.mode != 'RGB':
    image = image.convert('RGB')
  resized = image.resize((size, size), Image.Resampling.BILINEAR, box=box,
                         reducing_gap=None)
  return np.asarray(resized)


def random_resized_crop(image: Image.Image, rng: np.random.Generator, size: int,
                        scale, ratio) -> np.ndarray:
  """Inception-style crop: random area fraction and aspect ratio, resized.

  Falls back to the central square-ish crop when ten draws do not fit.
  """
  width, height = image.size
  area = width * height
  log_ratio = np.log(ratio)
  for _ in range(10):
    target_area = area * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(*log_ratio))
    w = round(math.sqrt(target_area * aspect))
    h = round(math.sqrt(target_area / aspect))
    if 0 < w <= width and 0 < h <= height:
      left = rng.integers(0, width - w + 1)
      top = rng.integers(0, height - h + 1)
      return _decode_region(image, (left, top, left + w, top + h), size)
  return center_crop(image, size, crop_fraction=1.0)


def center_crop(image: Image.Image, size: int, crop_fraction: float) -> np.ndarray:
  """The central square of `crop_fraction` of the short side, resized."""
  width, height = image.size
  side = min(width, height) * crop_fraction
  left, top = (width - side) / 2, (height - side) / 2
  return _decode_region(image, (left, top, left + side, top + side), size)


def eval_crop(data: bytes, size: int, crop_fraction: float) -> np.ndarray:
  """A stored photo (JPEG bytes) as it is scored: its centre crop. The one
  composition validation (pipeline.EvalPreprocess) and inference
  (skinjax.inference.preparation) share."""
  return center_crop(open_image(data), size, crop_fraction)


def flip_and_rotate(image: np.ndarray, rng: np.random.Generator, hflip: bool,
                    vflip: bool, rot90: bool) -> np.ndarray:
  """Random element of the symmetry group the config allows."""
  if hflip and rng.random() < 0.5:
    image = image[:, ::-1]
  if vflip and rng.random() < 0.5:
    image = image[::-1]
  if rot90:
    image = np.rot90(image, k=rng.integers(4))
  return np.ascontiguousarray(image)


def colour_jitter(image: np.ndarray, rng: np.random.Generator,
                  brightness: float, contrast: float,
                  saturation: float) -> np.ndarray:
  """Mild brightness, contrast and saturation changes, as between cameras."""
  if not (brightness or contrast or saturation):
    return image
  x = image.astype(np.float32)
  x *= rng.uniform(1 - brightness, 1 + brightness)
  grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
  x = (x - grey.mean()) * rng.uniform(1 - contrast, 1 + contrast) + grey.mean()
  grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
  s = rng.uniform(1 - saturation, 1 + saturation)
  x = grey[..., None] + s * (x - grey[..., None])
  return np.clip(x, 0, 255).round().astype(np.uint8)
