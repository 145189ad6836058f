"""The quality gate (skinjax.inference.quality): each check fires on the
photos it is for and not on the run's own, and the service skips what it
flags when a live camera asks it to."""

import io

import ml_collections
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import data as skimage_data

from helpers import SERVICE_TOKEN
from skinjax.config import defaults
from skinjax.data.builders import lesion_drawing
from skinjax.inference import appearance
from skinjax.inference import quality
from skinjax.service import client as client_lib


def _lesions(split: int, count: int, size: int = 96) -> list:
  return [lesion_drawing.draw(np.random.default_rng([7, split, i]), i % 6,
                              size)[0] for i in range(count)]


def _gate(training, validation, image_size=64) -> quality.Gate:
  config = ml_collections.ConfigDict(defaults.get_config())
  statistics = quality.fit(config, image_size, training, validation)
  assert set(statistics) == set(quality.STATISTICS_KEYS)
  return quality.Gate.from_config(config, image_size, statistics)


@pytest.fixture(scope='module')
def gate():
  return _gate(_lesions(0, 240), _lesions(1, 100))


def test_each_check_flags_what_it_is_for_and_passes_the_runs_photos(gate):
  fresh = _lesions(2, 100)
  verdicts = [quality.assess(p, gate) for p in fresh]
  # Each relative check flags about its share (1% and 2%) of new photos.
  assert np.mean([v['flagged'] for v in verdicts]) <= 0.08
  photo = next(p for p, v in zip(fresh, verdicts) if not v['flagged'])
  blurred = ndimage.gaussian_filter(photo, (2.5, 2.5, 0))
  dark = (photo * 0.05).astype(np.uint8)
  blown = np.clip(photo.astype(int) * 4, 0, 255).astype(np.uint8)
  assert 'blurred' in quality.assess(blurred, gate)['reasons']
  assert 'too_dark' in quality.assess(dark, gate)['reasons']
  # Underexposed without clipping: the bright end says so.
  dim = (photo * 0.2).astype(np.uint8)
  verdict = quality.assess(dim, gate)
  assert verdict['dark_share'] <= gate.max_dark_share, verdict
  assert 'too_dark' in verdict['reasons'], verdict
  assert 'too_bright' in quality.assess(blown, gate)['reasons']
  # Dimming alone is neither blur (sharpness is relative to contrast) nor
  # another kind of photo (appearance is described at one exposure).
  dim = (photo * 0.5).astype(np.uint8)
  assert not {'blurred', 'no_skin'} & set(quality.assess(dim, gate)['reasons'])
  verdict = quality.assess(blurred, gate)
  assert verdict['flagged'] and 'hold still' in verdict['message']


def test_not_skin_is_far_from_the_runs_photos_whatever_the_model(gate):
  for name in ('chelsea', 'rocket', 'astronaut', 'coffee'):
    verdict = quality.assess(getattr(skimage_data, name)(), gate)
    assert 'no_skin' in verdict['reasons'], (name, verdict)
    assert verdict['message'].endswith('no skin in view')


def test_a_calibration_from_before_the_gate_measures_what_it_can():
  config = ml_collections.ConfigDict(defaults.get_config())
  photos = _lesions(4, 20)
  fitted = quality.fit(config, 64, photos, photos)
  stale = {**fitted, 'appearance_version': np.int64(appearance.VERSION - 1)}
  for statistics in ({'means': np.zeros((2, 3))}, stale):
    gate = quality.Gate.from_config(config, 64, statistics)
    verdict = quality.assess(skimage_data.rocket(), gate)
    assert verdict['appearance_distance'] is None
    assert 'no_skin' not in verdict['reasons']
    assert 'blurred' not in verdict['reasons']
  assert quality.Gate.from_config(config, 64, fitted).appearance_model


def test_appearance_is_described_the_same_at_any_photo_size():
  photo = skimage_data.chelsea()
  big = np.asarray(Image.fromarray(photo).resize((900, 600)))
  a, b = appearance.describe(photo), appearance.describe(big)
  assert a.shape == (len(appearance.FEATURE_NAMES),)
  np.testing.assert_allclose(a, b, rtol=0.15, atol=0.05)


def _png(image) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def test_the_service_skips_flagged_photos_only_when_asked(service):
  url, _ = service
  client = client_lib.Client(url, SERVICE_TOKEN, timeout=60)
  photos = [('chelsea.png', _png(skimage_data.chelsea())),
            ('lesion.png', _png(_lesions(3, 1)[0]))]
  status, before = client.statistics()
  assert status == 200
  status, body = client.predict(photos, usable_only=True)
  assert status == 200, body
  cat, lesion = body['photos']
  assert cat['differential'] == [] and cat['unfamiliar'] is None
  assert 'no_skin' in cat['quality']['reasons']
  assert cat['quality']['message'] == 'no skin in view'
  assert lesion['differential'] and lesion['quality']['flagged'] is False
  status, after = client.statistics()
  assert after['photos_refused_by_quality_gate'] == before.get(
      'photos_refused_by_quality_gate', 0) + 1
  # A request the gate refuses whole still gets its answer.
  status, body = client.predict(photos[:1], usable_only=True)
  assert status == 200, body
  assert body['photos'][0]['differential'] == []
  status, body = client.predict(photos[:1])
  assert status == 200 and body['photos'][0]['differential']
  assert body['photos'][0]['quality']['flagged'] is True
  status, card = client.model()
  assert card['thresholds']['quality']['appearance_distance_above'] > 0
