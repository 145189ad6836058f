"""Procedural skin photographs with synthetic lesions, drawn with numpy.

Each image is a patch of skin (tone, lighting, texture, hair, sensor noise)
with lesions of one synthetic class. The class is set only by shape, border,
colour *pattern*, texture and spatial distribution: every class draws its
lesion colours from the same palette and covers a similar area, so the mean
colour of an image says little about its class and a model has to learn
morphology. Everything is a pure function of the `numpy.random.Generator`.
"""

import numpy as np

CLASS_NAMES = (
    'synthetic_irregular_blot',     # one asymmetric, variegated, ragged patch
    'synthetic_annular_ring',       # rings with a clear centre
    'synthetic_scattered_papules',  # many small domed dots
    'synthetic_scaly_plaque',       # sharp-edged plaques under white scale
    'synthetic_soft_wheals',        # soft-edged pale swellings with a flare
    'synthetic_vascular_nodule',    # one shiny dome with branching vessels
)

# Skin tones from very light to very dark (RGB, 0-255).
_SKIN_TONES = np.array([
    [246, 221, 204], [235, 196, 170], [214, 170, 135], [190, 140, 100],
    [150, 100, 70], [110, 72, 48], [80, 52, 36],
], np.float32)

# Lesion pigments shared by all classes.
_PIGMENTS = np.array([
    [120, 70, 40],    # brown
    [70, 40, 25],     # dark brown
    [190, 60, 60],    # red
    [220, 120, 130],  # pink
    [130, 60, 110],   # violet
    [235, 215, 200],  # pale
], np.float32)


def _smooth_noise(rng, size, cells):
  """Smooth random field in [-1, 1]: bilinear upsampling of a coarse grid."""
  grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
  coords = np.linspace(0, cells, size, dtype=np.float32)
  i0 = np.minimum(coords.astype(int), cells - 1)
  t = coords - i0
  rows = grid[i0] * (1 - t)[:, None] + grid[i0 + 1] * t[:, None]
  return rows[:, i0] * (1 - t)[None, :] + rows[:, i0 + 1] * t[None, :]


def _grid(size):
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  return (ys + 0.5) / size, (xs + 0.5) / size


def _blob_distance(rng, size, center, radius, raggedness, harmonics=6):
  """Signed distance (in image fractions) to a star-shaped blob; < 0 inside.

  The radius is modulated by random Fourier harmonics: raggedness 0 gives an
  ellipse-like smooth border, larger values an irregular, asymmetric one.
  """
  ys, xs = _grid(size)
  dy, dx = ys - center[0], xs - center[1]
  theta = np.arctan2(dy, dx)
  r = np.hypot(dy, dx)
  boundary = np.ones_like(theta)
  for k in range(1, harmonics + 1):
    amp = raggedness * rng.uniform(0, 1) / k**0.7
    boundary += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
  boundary = radius * np.clip(boundary, 0.35, None)
  return r - boundary


def _soft_mask(distance, edge):
  """Coverage in [0, 1] from a signed distance; `edge` is the blur width."""
  return np.clip(0.5 - distance / edge, 0.0, 1.0)


def _lesion_colour(rng, skin, min_contrast=45.0):
  """A pigment blended with the skin, redrawn until it stands out from it."""
  while True:
    pigment = _PIGMENTS[rng.integers(len(_PIGMENTS))]
    mix = rng.uniform(0.55, 0.95)
    colour = mix * pigment + (1 - mix) * skin
    if np.linalg.norm(colour - skin) >= min_contrast:
      return colour


def _paint(image, mask, colour):
  image *= 1 - mask[..., None]
  image += mask[..., None] * colour


def _random_center(rng, margin):
  return rng.uniform(margin, 1 - margin, 2)


def _draw_irregular_blot(rng, image, skin, size):
  radius = rng.uniform(0.17, 0.3)
  dist = _blob_distance(rng, size, _random_center(rng, 0.3), radius,
                        raggedness=rng.uniform(0.35, 0.6))
  mask = _soft_mask(dist, edge=rng.uniform(0.01, 0.025))
  # Variegation: two colours mixed by a smooth field.
  first, second = _lesion_colour(rng, skin), _lesion_colour(rng, skin)
  mix = (_smooth_noise(rng, size, 4) + 1) / 2
  colour = mix[..., None] * first + (1 - mix[..., None]) * second
  _paint(image, mask, colour)


def _draw_annular_ring(rng, image, skin, size):
  colour = _lesion_colour(rng, skin)
  for _ in range(rng.integers(1, 3)):
    radius = rng.uniform(0.12, 0.26)
    width = rng.uniform(0.025, 0.05)
    dist = _blob_distance(rng, size, _random_center(rng, 0.25), radius,
                          raggedness=rng.uniform(0.0, 0.15))
    ring = np.abs(dist + width) - width
    _paint(image, _soft_mask(ring, edge=0.015) * rng.uniform(0.75, 1), colour)


def _draw_scattered_papules(rng, image, skin, size):
  colour = _lesion_colour(rng, skin)
  ys, xs = _grid(size)
  for _ in range(rng.integers(18, 40)):
    cy, cx = rng.uniform(0.05, 0.95, 2)
    radius = rng.uniform(0.018, 0.04)
    r = np.hypot(ys - cy, xs - cx)
    mask = _soft_mask(r - radius, edge=0.012)
    # Domed shading: lighter on top, darker towards the rim.
    dome = np.clip(1 - (r / radius)**2, 0, 1)[..., None]
    _paint(image, mask, colour * (0.85 + 0.3 * dome))


def _draw_scaly_plaque(rng, image, skin, size):
  for _ in range(rng.integers(1, 4)):
    colour = _lesion_colour(rng, skin)
    dist = _blob_distance(rng, size, _random_center(rng, 0.2),
                          rng.uniform(0.1, 0.22), raggedness=rng.uniform(0.1, 0.3))
    mask = _soft_mask(dist, edge=0.008)
    _paint(image, mask, colour)
    # Scale: fine white flakes, denser towards the middle of the plaque.
    flakes = rng.uniform(0, 1, (size, size)) < rng.uniform(0.2, 0.45)
    depth = np.clip(-dist / 0.05, 0, 1)
    scale = flakes * mask * depth * rng.uniform(0.6, 0.9)
    _paint(image, scale.astype(np.float32), np.array([242, 238, 232], np.float32))


def _draw_soft_wheals(rng, image, skin, size):
  flare = _lesion_colour(rng, skin)
  for _ in range(rng.integers(2, 5)):
    dist = _blob_distance(rng, size, _random_center(rng, 0.15),
                          rng.uniform(0.08, 0.16), raggedness=rng.uniform(0.2, 0.45))
    # A wide blurred flare, and inside it a swelling paler than the skin.
    _paint(image, _soft_mask(dist - 0.03, edge=0.08) * 0.8, flare)
    pale = np.minimum(skin * 1.12 + 20, 255)
    _paint(image, _soft_mask(dist, edge=0.05) * 0.85, pale)


def _draw_vascular_nodule(rng, image, skin, size):
  colour = _lesion_colour(rng, skin)
  center = _random_center(rng, 0.3)
  radius = rng.uniform(0.12, 0.22)
  dist = _blob_distance(rng, size, center, radius, raggedness=rng.uniform(0, 0.08))
  ys, xs = _grid(size)
  r = np.hypot(ys - center[0], xs - center[1])
  dome = np.clip(1 - (r / radius)**2, 0, 1)[..., None]
  _paint(image, _soft_mask(dist, edge=0.012), colour * (0.75 + 0.35 * dome))
  # Specular highlight towards the light.
  hy, hx = center - radius * 0.35
  highlight = np.exp(-((ys - hy)**2 + (xs - hx)**2) / (2 * (radius * 0.18)**2))
  _paint(image, highlight * rng.uniform(0.5, 0.85), np.array([250, 245, 240], np.float32))
  # Branching vessels: thin red polylines starting near the nodule.
  vessel = np.array([170, 30, 40], np.float32)
  for _ in range(rng.integers(2, 6)):
    _paint(image, _polyline_mask(rng, size, center, steps=rng.integers(3, 7),
                                 step_len=rng.uniform(0.03, 0.06),
                                 width=rng.uniform(0.002, 0.005))
           * rng.uniform(0.4, 0.8), vessel)


def _polyline_mask(rng, size, start, steps, step_len, width):
  """Coverage of a random-walk polyline; used for vessels and hair."""
  ys, xs = _grid(size)
  mask = np.zeros((size, size), np.float32)
  point = np.array(start, np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  for _ in range(steps):
    angle += rng.normal(0, 0.5)
    nxt = point + step_len * np.array([np.sin(angle), np.cos(angle)])
    seg = nxt - point
    t = ((ys - point[0]) * seg[0] + (xs - point[1]) * seg[1]) / (seg @ seg)
    t = np.clip(t, 0, 1)
    d = np.hypot(ys - point[0] - t * seg[0], xs - point[1] - t * seg[1])
    mask = np.maximum(mask, _soft_mask(d - width, edge=1.5 / size))
    point = nxt
  return mask


_DRAW_FNS = (_draw_irregular_blot, _draw_annular_ring, _draw_scattered_papules,
             _draw_scaly_plaque, _draw_soft_wheals, _draw_vascular_nodule)


def _skin(rng, size):
  """Skin patch: tone, large-scale mottling and fine texture."""
  t = rng.uniform(0, len(_SKIN_TONES) - 1)
  lo = min(int(t), len(_SKIN_TONES) - 2)
  frac = t - lo
  tone = _SKIN_TONES[lo] * (1 - frac) + _SKIN_TONES[lo + 1] * frac
  tone = tone * rng.uniform(0.94, 1.06, 3)
  image = np.broadcast_to(tone, (size, size, 3)).astype(np.float32).copy()
  image *= 1 + 0.06 * _smooth_noise(rng, size, 3)[..., None]
  image *= 1 + 0.03 * _smooth_noise(rng, size, 12)[..., None]
  return image, tone


def _lighting(rng, image, size):
  """A directional gradient and a vignette, as from a handheld flash."""
  ys, xs = _grid(size)
  angle = rng.uniform(0, 2 * np.pi)
  gradient = (ys - 0.5) * np.sin(angle) + (xs - 0.5) * np.cos(angle)
  vignette = ((ys - 0.5)**2 + (xs - 0.5)**2) * rng.uniform(0.0, 0.8)
  gain = rng.uniform(0.85, 1.05) * (1 + rng.uniform(0, 0.3) * gradient - vignette)
  image *= gain[..., None]


def _hair(rng, image, size):
  colour = np.array([40, 28, 20], np.float32) * rng.uniform(0.6, 1.4)
  for _ in range(rng.poisson(2.5)):
    mask = _polyline_mask(rng, size, rng.uniform(0, 1, 2), steps=rng.integers(3, 7),
                          step_len=rng.uniform(0.08, 0.2),
                          width=rng.uniform(0.002, 0.006))
    _paint(image, mask * rng.uniform(0.5, 0.9), colour)


def draw(rng: np.random.Generator, label: int, size: int) -> tuple:
  """One `size` x `size` RGB uint8 photo of class `label`, and the skin tone
  it was drawn with (RGB floats, before lighting and noise): the truth a
  skin-tone estimate is checked against."""
  image, tone = _skin(rng, size)
  _DRAW_FNS[label](rng, image, tone, size)
  _hair(rng, image, size)
  _lighting(rng, image, size)
  image += rng.normal(0, rng.uniform(1, 6), image.shape)
  return np.clip(image, 0, 255).round().astype(np.uint8), tone


def draw_image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
  """Draws one `size` x `size` RGB uint8 photo of class `label`."""
  return draw(rng, label, size)[0]
