"""Shared fixtures."""

from absl import flags
import pytest

from helpers import dataset_config

# grain reads absl flags in its worker processes; tests have no app.run.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope='session')
def small_data_dir(tmp_path_factory):
  """synthetic_lesions/small prepared once per session (240/60/60 images)."""
  from skinjax import data  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  data.prepare(data.get_builder(dataset_config('synthetic_lesions/small', data_dir)))
  return data_dir
