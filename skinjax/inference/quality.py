"""The quality gate: is a photo (or a camera frame) usable at all, judged
before it is scored and without the model? Three checks, each with its
reason:

- 'blurred' ("hold still"): variance of the Laplacian of the photo's
  lightness at the model's input scale, over the variance of lightness (so
  dimness alone is not blur), below all but `blur_refuse_share` of the
  run's validation photos;
- 'too_dark' / 'too_bright': the share of clipped pixels (lightness at most
  `dark_level`, or every channel at least `bright_level`) above
  `max_dark_share` / `max_bright_share`; and 'too_dark' too when the photo's
  bright end (the 99th percentile of its luma) is below `dark_margin` times
  the bright end of all but `dark_refuse_share` of the run's validation
  photos (underexposed without clipping: half the light ruins a dermoscopy
  model's balanced accuracy; the margin keeps well-lit photos of darker
  skin, whose bright ends make the low tail, from being refused);
- 'no_skin' ("no skin in view"): the photo's appearance (colour and texture
  statistics, skinjax.inference.appearance) further from the run's training
  photos than all but `skin_refuse_share` of its validation photos.

The thresholds are config.evaluation.quality.*; the three relative to the
run's photos are fitted with its calibration (skinjax.evaluation.calibrate)
and saved in its feature statistics ('sharpness_threshold',
'bright_end_threshold', 'appearance_*'). How they were chosen and what they
do on real photos is in experiments/quality_gate/. A photo the
gate flags is still scored by predict and evaluate (flagged beside
'uncertain' and 'unfamiliar'); the service can skip it (usable_only).
"""

import dataclasses

import numpy as np
from scipy import ndimage

from skinjax.data import preprocess
from skinjax.inference import appearance
from skinjax.inference import skin_tone

MESSAGES = {'blurred': 'hold still', 'too_dark': 'too dark',
            'too_bright': 'too bright', 'no_skin': 'no skin in view'}
REASONS = tuple(MESSAGES)
# What `fit` adds to a calibration's feature statistics.
STATISTICS_KEYS = ('appearance_mean', 'appearance_precision',
                   'appearance_threshold', 'sharpness_threshold',
                   'bright_end_threshold', 'appearance_version')


def current(statistics) -> bool:
  """Whether a calibration's feature statistics hold the gate's statistics
  as this code fits them."""
  return (statistics is not None and 'appearance_version' in statistics
          and int(statistics['appearance_version']) == appearance.VERSION)


@dataclasses.dataclass(frozen=True)
class Gate:
  """The gate's thresholds. The two fitted on the run's photos are None
  in a calibration written before the gate existed: those checks are then
  not measured."""
  image_size: int  # the model's input side: sharpness is measured there
  dark_level: float  # CIELAB-like lightness in [0, 100]
  max_dark_share: float
  bright_level: int  # uint8 channel value
  max_bright_share: float
  min_sharpness: float | None = None
  min_bright_end: float | None = None  # luma, 0-255
  appearance_model: dict | None = None  # appearance.fit, plus 'threshold'

  @classmethod
  def from_config(cls, config, image_size: int, statistics=None) -> 'Gate':
    """From config.evaluation.quality and the calibration's feature
    statistics (their 'appearance_*' arrays, when fitted)."""
    quality = config.evaluation.quality
    statistics = statistics if current(statistics) else {}
    model = None
    if statistics:
      model = {'mean': statistics['appearance_mean'],
               'precision': statistics['appearance_precision'],
               'threshold': float(statistics['appearance_threshold'])}
    fitted = {key: float(statistics[key]) if key in statistics else None
              for key in ('sharpness_threshold', 'bright_end_threshold')}
    return cls(image_size=image_size,
               min_sharpness=fitted['sharpness_threshold'],
               min_bright_end=fitted['bright_end_threshold'],
               dark_level=quality.dark_level,
               max_dark_share=quality.max_dark_share,
               bright_level=quality.bright_level,
               max_bright_share=quality.max_bright_share,
               appearance_model=model)


def sharpness(rgb: np.ndarray, image_size: int) -> float:
  """Variance of the Laplacian of lightness with the photo's short side at
  `image_size` (what detail the model can see), over the variance of
  lightness: a dim or low-contrast photo is not called blurred for it."""
  lightness = appearance.luma(appearance.shrunk(rgb, image_size)) / 255
  return float(ndimage.laplace(lightness).var() / (lightness.var() + 1e-6))


def bright_end(luma: np.ndarray) -> float:
  """The 99th percentile of a photo's luma (appearance.luma): where its
  light ends. A well-lit photo of dark skin keeps its highlights; a dim
  one has none."""
  return float(np.quantile(luma, 0.99))


def measure(rgb: np.ndarray, gate: Gate) -> dict:
  """The gate's measurements of one uint8 RGB photo."""
  rgb = np.asarray(rgb)[..., :3]
  small = appearance.working_image(rgb)
  luma = appearance.luma(small)
  measures = {
      'sharpness': sharpness(rgb, gate.image_size),
      'dark_share': float((luma <= gate.dark_level * 2.55).mean()),
      'bright_end': bright_end(luma),
      'bright_share': float((small.min(axis=-1)
                             >= gate.bright_level).mean()),
      'appearance_distance': None}
  if gate.appearance_model is not None:
    measures['appearance_distance'] = float(appearance.distance(
        gate.appearance_model, appearance.describe(small))[0])
  return measures


def fit(config, image_size: int, training_photos, validation_photos) -> dict:
  """The feature-statistics arrays of the gate's checks relative to the
  run's photos (uint8 RGB arrays): the appearance model of the training
  photos, and the thresholds that flag config.evaluation.quality's
  skin_refuse_share, blur_refuse_share and dark_refuse_share of the
  validation photos."""
  quality = config.evaluation.quality
  model = appearance.fit(np.stack([appearance.describe(p)
                                   for p in training_photos]))
  distances = appearance.distance(model, np.stack(
      [appearance.describe(p) for p in validation_photos]))
  sharp = [sharpness(p, image_size) for p in validation_photos]
  ends = [bright_end(appearance.luma(appearance.working_image(p)))
          for p in validation_photos]
  return {'appearance_mean': model['mean'],
          'appearance_precision': model['precision'],
          'appearance_threshold': np.float64(np.quantile(
              distances, 1 - quality.skin_refuse_share)),
          'sharpness_threshold': np.float64(np.quantile(
              sharp, quality.blur_refuse_share)),
          'bright_end_threshold': np.float64(
              quality.dark_margin
              * np.quantile(ends, quality.dark_refuse_share)),
          'appearance_version': np.int64(appearance.VERSION)}


def verdict(measures: dict, gate: Gate) -> dict:
  """{'flagged', 'reasons', 'message', **measures}: the reasons in REASONS
  order, the message as a person holding a camera reads it."""
  reasons = []
  if gate.min_sharpness is not None and (
      measures['sharpness'] < gate.min_sharpness):
    reasons.append('blurred')
  if measures['dark_share'] > gate.max_dark_share or (
      gate.min_bright_end is not None
      and measures['bright_end'] < gate.min_bright_end):
    reasons.append('too_dark')
  if measures['bright_share'] > gate.max_bright_share:
    reasons.append('too_bright')
  distance = measures['appearance_distance']
  if distance is not None and distance > gate.appearance_model['threshold']:
    reasons.append('no_skin')
  return {'flagged': bool(reasons), 'reasons': reasons,
          'message': '; '.join(MESSAGES[r] for r in reasons),
          **measures}


def assess(rgb: np.ndarray, gate: Gate) -> dict:
  """The gate's verdict on one uint8 RGB photo (measure, then verdict)."""
  return verdict(measure(rgb, gate), gate)


def judge(encoded: bytes, skin_region: str, gate: Gate) -> tuple:
  """(skin_tone.estimate, assess) of one encoded photo, as the run's
  preparation Recipe normalised it: what is measured on the photo itself,
  not by the model, from one decode (predict, the service, evaluate)."""
  photo = np.asarray(preprocess.open_image(encoded).convert('RGB'))
  return skin_tone.estimate(photo, skin_region), assess(photo, gate)
