"""The embedded dataset: deterministic, balanced, and not solvable by colour."""

import io

import numpy as np
from PIL import Image

from helpers import dataset_config, mean_colour_linear_accuracy
from skinjax import data
from skinjax.data import pipeline
from skinjax.data.builders import lesion_drawing


def test_drawing_is_a_pure_function_of_the_seed():
  a = lesion_drawing.draw_image(np.random.default_rng([0, 0, 7]), 3, 48)
  b = lesion_drawing.draw_image(np.random.default_rng([0, 0, 7]), 3, 48)
  c = lesion_drawing.draw_image(np.random.default_rng([0, 0, 8]), 3, 48)
  assert a.shape == (48, 48, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert np.abs(a.astype(int) - c).mean() > 5


def test_class_names_are_synthetic_not_diseases():
  assert len(lesion_drawing.CLASS_NAMES) >= 6
  assert all(n.startswith('synthetic_') for n in lesion_drawing.CLASS_NAMES)
  diseases = ('melanoma', 'psoriasis', 'eczema', 'acne', 'urticaria', 'tinea',
              'vasculitis', 'carcinoma', 'nevus')
  assert not any(d in n for n in lesion_drawing.CLASS_NAMES for d in diseases)


def test_small_builder_splits_and_labels(small_data_dir):
  builder = data.get_builder(dataset_config('synthetic_lesions/small', small_data_dir))
  assert builder.is_prepared()
  sizes = {s: builder.info.splits[s].num_examples
           for s in ('train', 'validation', 'test')}
  assert sizes == {'train': 240, 'validation': 60, 'test': 60}
  source = pipeline.data_source(builder, 'train')
  labels = np.array([source[i]['label'] for i in range(len(source))])
  np.testing.assert_array_equal(np.bincount(labels), [40] * 6)
  image = Image.open(io.BytesIO(source[0]['image']))
  assert image.format == 'JPEG' and image.size == (64, 64)
  assert builder.info.features['label'].names == list(
      lesion_drawing.CLASS_NAMES)


def test_rebuilding_gives_identical_examples(small_data_dir, tmp_path):
  again = data.get_builder(dataset_config('synthetic_lesions/small', str(tmp_path)))
  data.prepare(again)
  first = pipeline.data_source(
      data.get_builder(dataset_config('synthetic_lesions/small', small_data_dir)), 'test')
  second = pipeline.data_source(again, 'test')
  for i in range(len(first)):
    assert first[i]['id'] == second[i]['id']
    assert first[i]['image'] == second[i]['image']


def _mean_colour_dataset(split_id, n, size=32):
  labels = np.arange(n) % len(lesion_drawing.CLASS_NAMES)
  features = np.stack([
      lesion_drawing.draw_image(np.random.default_rng([0, split_id, i]),
                                label, size).reshape(-1, 3).mean(0)
      for i, label in enumerate(labels)])
  return features, labels


def test_mean_colour_is_near_chance():
  """A linear classifier on mean colour stays near chance (1/6 = 0.167)."""
  accuracy = mean_colour_linear_accuracy(_mean_colour_dataset(0, 900),
                                         _mean_colour_dataset(2, 600))
  assert accuracy < 0.3, accuracy
