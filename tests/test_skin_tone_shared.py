"""The skin-tone estimate on the real photos in ../shared/data (skipped where
that folder is absent): read straight from the files, nothing prepared."""

import glob
import os

import numpy as np
from PIL import Image
import pytest

from helpers import REPO
from skinjax.inference import skin_tone

SHARED = os.path.join(os.path.dirname(REPO), 'shared', 'data')
pytestmark = pytest.mark.skipif(not os.path.isdir(SHARED),
                                reason='../shared/data is not here')


def _estimates(pattern, region, count=120):
  files = sorted(glob.glob(os.path.join(SHARED, pattern)))[::7][:count]
  assert len(files) == count
  return [skin_tone.estimate(np.asarray(Image.open(f).convert('RGB')), region)
          for f in files]


def test_ham10000_dermoscopy_is_mostly_measurable_and_light():
  """HAM10000 comes from clinics of mostly light-skinned patients."""
  estimates = _estimates('ham10000/images_by_dx/nv/*.jpg', 'ring')
  groups = [e['group'] for e in estimates]
  assert np.mean([g != skin_tone.UNKNOWN for g in groups]) >= 0.7
  light = np.mean([g in ('very_light', 'light', 'intermediate') for g in groups
                   if g != skin_tone.UNKNOWN])
  assert light >= 0.7, groups


def test_clinical_photos_have_more_skin_than_photos_of_other_things():
  import skimage.data  # pylint: disable=g-import-not-at-top
  clinical = _estimates('dermnet_nz/test/*/*.jpg', 'frame')
  others = [skin_tone.estimate(getattr(skimage.data, n)()[..., :3])
            for n in ('astronaut', 'rocket', 'coffee', 'hubble_deep_field',
                      'immunohistochemistry', 'colorwheel')]
  assert (np.median([e['skin_fraction'] for e in clinical])
          > 2 * np.median([e['skin_fraction'] for e in others]))
