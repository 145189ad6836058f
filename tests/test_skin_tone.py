"""Skin tone from the photo (ITA), checked where the truth is known: the
synthetic dataset records the tone each photo was drawn with."""

import io

import numpy as np
from PIL import Image

from helpers import dataset_config
from skinjax import data
from skinjax.data import pipeline
from skinjax.inference import skin_tone


def _estimates_and_truth(data_dir):
  builder = data.get_builder(dataset_config('synthetic_lesions/small', data_dir))
  estimated, truth = [], []
  for split in ('validation', 'test'):
    source = pipeline.data_source(builder, split)
    for i in range(len(source)):
      image = np.asarray(Image.open(io.BytesIO(source[i]['image'])))
      estimated.append(skin_tone.estimate(image)['ita'])
      truth.append(skin_tone.ita_of_rgb(source[i]['skin_rgb']))
  return np.array(estimated, float), np.array(truth)


def test_ita_follows_the_drawn_skin_tone(small_data_dir):
  estimated, truth = _estimates_and_truth(small_data_dir)
  assert np.isfinite(estimated).all()
  assert np.ptp(truth) > 100  # the tones drawn span the groups
  correlation = np.corrcoef(estimated, truth)[0, 1]
  assert correlation >= 0.9, correlation
  groups = [skin_tone.group(a) for a in estimated]
  assert len(set(groups)) >= 5
  # Lighting darkens the photo (ITA lower), never by more than a group or so.
  assert np.median(np.abs(estimated - truth)) < 15


def test_lab_of_reference_colours():
  lab = skin_tone.rgb_to_lab(np.array([[255, 255, 255], [255, 0, 0],
                                       [0, 0, 0]], np.uint8))
  np.testing.assert_allclose(lab, [[100, 0, 0], [53.24, 80.09, 67.20],
                                   [0, 0, 0]], atol=0.05)


def test_groups_follow_the_usual_bounds():
  assert [skin_tone.group(a) for a in (60, 55, 41.5, 30, 10.5, 0, -31)] == [
      'very_light', 'light', 'light', 'intermediate', 'tan', 'brown', 'dark']
  assert skin_tone.group(None) == skin_tone.UNKNOWN


def _photo(skin, size=96):
  return np.broadcast_to(np.asarray(skin, np.uint8), (size, size, 3)).copy()


def test_background_hair_ink_and_lesion_are_left_out():
  skin = (190, 140, 100)
  image = _photo(skin)
  image[:, :40] = (40, 90, 200)  # blue drape
  image[::7, 40:] = (30, 25, 20)  # dark hairs
  image[50:60, 60:90] = (110, 40, 150)  # violet ink
  image[20:45, 55:85] = (90, 45, 30)  # a brown lesion
  estimate = skin_tone.estimate(image)
  assert abs(estimate['ita'] - skin_tone.ita_of_rgb(skin)) < 2, estimate


def test_dermoscopy_measures_the_ring_outside_the_lesion():
  """A lesion filling most of the frame: the whole frame's median is the
  lesion, the border ring's is the skin."""
  skin = (235, 196, 170)
  image = _photo(skin)
  ys, xs = np.mgrid[:96, :96]
  image[np.hypot(ys - 48, xs - 48) < 40] = (150, 90, 60)
  truth = skin_tone.ita_of_rgb(skin)
  assert abs(skin_tone.estimate(image, 'ring')['ita'] - truth) < 2
  assert abs(skin_tone.estimate(image, 'frame')['ita'] - truth) > 10
  assert skin_tone.region_for('ham10000') == 'ring'
  assert skin_tone.region_for('dermnet/23') == 'frame'


def test_no_skin_no_tone():
  sky = _photo((60, 110, 220))
  estimate = skin_tone.estimate(sky)
  assert estimate['ita'] is None and estimate['group'] == skin_tone.UNKNOWN
  assert estimate['skin_fraction'] < 0.05
