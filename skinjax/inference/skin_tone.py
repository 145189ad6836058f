"""Skin tone from the photo: the individual typology angle (ITA) of the skin
around the lesion, and its six groups (Chardon et al., 1991; Del Bino et
al., 2013).

ITA = arctan((L* - 50) / b*) in degrees, in CIELAB (D65). It is measured on
skin pixels away from the lesion: pixels of skin colour (red-to-yellow hue,
some chroma, neither black nor blown out: this drops most backgrounds, dark
hair, blue or violet ink, shadows and glare), then those close in colour to
the skin's robust median, so the lesion, which differs from the skin around
it, drops out too. Dermoscopy centres the lesion, so there the median starts
from the ring along the image's border, and only that ring is used ("the
ring outside the lesion"); clinical photos start from the whole frame.
"""

import math

import numpy as np

# (group, lowest ITA in degrees) from light to dark; a group holds ITA above
# its bound and up to the previous group's.
ITA_GROUPS = (('very_light', 55.0), ('light', 41.0), ('intermediate', 28.0),
              ('tan', 10.0), ('brown', -30.0), ('dark', -math.inf))
GROUP_NAMES = tuple(name for name, _ in ITA_GROUPS)
UNKNOWN = 'unknown'  # too few skin pixels to measure

# Datasets whose photos are dermoscopy (the lesion in the middle).
DERMOSCOPY_DATASETS = ('ham10000', 'dermamnist')

_MIN_SKIN_FRACTION = 0.05  # of the region; below it the tone is unknown
_RING_WIDTH = 0.15  # of the short side, along every border
_WORKING_SIDE = 128  # photos are shrunk to about this short side first


def region_for(dataset_name: str) -> str:
  """'ring' for dermoscopy datasets, else 'frame'."""
  return ('ring' if dataset_name.partition('/')[0] in DERMOSCOPY_DATASETS
          else 'frame')


def _srgb_to_linear(rgb) -> np.ndarray:
  c = np.asarray(rgb, np.float64) / 255.0
  return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055)**2.4)


# The same curve at the 256 values of a uint8 channel: a table lookup
# instead of a power per pixel (most of the time of estimate on a photo).
_UINT8_TO_LINEAR = _srgb_to_linear(np.arange(256))


def rgb_to_lab(rgb) -> np.ndarray:
  """sRGB (uint8 or floats in [0, 255]) -> CIELAB (D65), same shape."""
  rgb = np.asarray(rgb)
  linear = (_UINT8_TO_LINEAR[rgb] if rgb.dtype == np.uint8
            else _srgb_to_linear(rgb))
  xyz = linear @ np.array([[0.4124564, 0.2126729, 0.0193339],
                           [0.3575761, 0.7151522, 0.1191920],
                           [0.1804375, 0.0721750, 0.9503041]])
  xyz /= np.array([0.95047, 1.0, 1.08883])
  f = np.where(xyz > (6 / 29)**3, np.cbrt(xyz), xyz / (3 * (6 / 29)**2) + 4 / 29)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                   200 * (f[..., 1] - f[..., 2])], axis=-1)


def ita(lab) -> np.ndarray:
  """ITA in degrees of CIELAB colours (..., 3)."""
  lab = np.asarray(lab, np.float64)
  return np.degrees(np.arctan2(lab[..., 0] - 50, lab[..., 2]))


def ita_of_rgb(rgb) -> float:
  """ITA of one sRGB colour."""
  return float(ita(rgb_to_lab(np.asarray(rgb, np.float64)[None]))[0])


def group(angle) -> str:
  """The ITA group of an angle; UNKNOWN for None or NaN."""
  if angle is None or not math.isfinite(angle):
    return UNKNOWN
  return next(name for name, low in ITA_GROUPS if angle > low)


def _shrink(image: np.ndarray) -> np.ndarray:
  step = max(1, min(image.shape[:2]) // _WORKING_SIDE)
  return image[::step, ::step, :3]


def _skin_coloured(lab) -> np.ndarray:
  """Pixels of plausible skin colour: hue between red and yellow, some
  chroma, neither near black (hair, shadow, dermoscope vignette) nor
  blown out (glare)."""
  lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
  hue = np.degrees(np.arctan2(b, a))
  return ((lightness > 12) & (lightness < 97) & (np.hypot(a, b) > 5)
          & (hue > -5) & (hue < 95))


def _border_ring(shape) -> np.ndarray:
  height, width = shape
  band = max(1, int(round(_RING_WIDTH * min(height, width))))
  ring = np.zeros(shape, bool)
  ring[:band], ring[-band:], ring[:, :band], ring[:, -band:] = (True,) * 4
  return ring


def estimate(image: np.ndarray, region: str = 'frame') -> dict:
  """{'ita': degrees or None, 'group', 'skin_fraction'} of an RGB photo.

  region 'ring' (dermoscopy) measures only the ring along the border;
  'frame' (clinical photos) the whole frame. 'skin_fraction' is the share
  of the region's pixels the estimate rests on.
  """
  pixels = _shrink(np.asarray(image))
  lab = rgb_to_lab(pixels[_border_ring(pixels.shape[:2])] if region == 'ring'
                   else pixels.reshape(-1, pixels.shape[-1]))
  candidates = lab[_skin_coloured(lab)]
  total = len(lab)
  if len(candidates) < max(16, _MIN_SKIN_FRACTION * total):
    return {'ita': None, 'group': UNKNOWN,
            'skin_fraction': len(candidates) / total}
  kept = candidates
  for _ in range(3):  # drop what differs from the skin's median colour
    centre = np.median(kept, axis=0)
    distance = np.linalg.norm(candidates - centre, axis=-1)
    spread = 1.4826 * np.median(np.linalg.norm(kept - centre, axis=-1))
    kept = candidates[distance <= max(2.5 * spread, 6.0)]
  angle = float(ita(np.median(kept, axis=0)))
  return {'ita': angle, 'group': group(angle),
          'skin_fraction': len(kept) / total}


def agreement(estimated, drawn) -> dict:
  """How ITA angles estimated on photos (NaN: unknown) agree with the angles
  of the tones they were drawn with: Pearson r and mean difference over the
  measured ones, and the share in the same group."""
  estimated, drawn = np.asarray(estimated), np.asarray(drawn)
  measured = np.isfinite(estimated)
  return {
      'pearson_r': float(np.corrcoef(estimated[measured],
                                     drawn[measured])[0, 1]),
      'mean_difference': float(np.mean(estimated[measured]
                                       - drawn[measured])),
      'group_agreement': float(np.mean([group(e) == group(d)
                                        for e, d in zip(estimated, drawn)]))}
