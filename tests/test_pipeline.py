"""The grain pipelines, on an in-memory source whose images encode their index."""

import io

import numpy as np
from PIL import Image
import pytest

from skinjax.config import defaults
from skinjax.data import pipeline

_STEP = 6  # grey level per index: example i is a uniform image of value 6 * i


def _source(n):
  examples = []
  for i in range(n):
    buffer = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), _STEP * i, np.uint8)).save(
        buffer, format='JPEG', quality=100)
    examples.append({'image': buffer.getvalue(), 'label': i % 5})
  return examples


def _indices(images):
  return [int(round(img.mean() / _STEP)) for img in images]


def _config(**input_overrides):
  config = defaults.get_config()
  config.image_size = 8
  config.batch_size = 4
  config.eval_batch_size = 8
  config.augment.brightness = config.augment.contrast = 0.0
  config.augment.saturation = 0.0  # keep grey levels readable
  for key, value in input_overrides.items():
    config.input[key] = value
  return config


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


@pytest.mark.parametrize('process_count', [1, 3])
def test_eval_sees_every_example_exactly_once(process_count):
  source, config = _source(37), _config()
  config.eval_batch_size = 6
  seen, batch_counts = [], []
  for process_index in range(process_count):
    batches = list(pipeline.eval_dataset(source, config, process_index,
                                         process_count))
    batch_counts.append(len(batches))
    for batch in batches:
      assert batch['image'].shape == (6 // process_count, 8, 8, 3)
      real = batch['mask']
      seen += _indices(batch['image'][real])
      np.testing.assert_array_equal(
          batch['label'][real], np.array(_indices(batch['image'][real])) % 5)
  assert sorted(seen) == list(range(37))
  assert len(set(batch_counts)) == 1  # every process runs the same steps


def test_train_epochs_are_permutations_reshuffled_each_epoch():
  source, config = _source(40), _config()
  iterator = iter(pipeline.train_dataset(source, config, 0, 1))
  epochs = [sum((_indices(b['image']) for b in _take(iterator, 10)), [])
            for _ in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(40))
  assert epochs[0] != epochs[1] != epochs[2]


def test_train_is_deterministic_per_seed():
  source = _source(40)
  first = _take(iter(pipeline.train_dataset(source, _config(), 0, 1)), 5)
  again = _take(iter(pipeline.train_dataset(source, _config(), 0, 1)), 5)
  config = _config()
  config.seed = 1
  other = _take(iter(pipeline.train_dataset(source, config, 0, 1)), 5)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['image'], b['image'])
  assert any(_indices(a['image']) != _indices(c['image'])
             for a, c in zip(first, other))


def test_processes_read_parts_of_the_same_global_batches():
  """Two processes' batches, put side by side, are the one-process batches:
  the global batch sequence does not depend on the process count."""
  source, config = _source(40), _config()
  whole = _take(iter(pipeline.train_dataset(source, config, 0, 1)), 12)
  parts = [_take(iter(pipeline.train_dataset(source, config, p, 2)), 12)
           for p in range(2)]
  for k, batch in enumerate(whole):
    assert parts[0][k]['image'].shape[0] == 2
    for key in ('image', 'label'):
      np.testing.assert_array_equal(
          np.concatenate([parts[0][k][key], parts[1][k][key]]), batch[key])


def test_augmentation_differs_between_processes():
  """Each example's crop and flips come from its own global position: with
  every photo the same, two processes still see different batches."""
  buffer = io.BytesIO()
  gradient = np.add.outer(np.arange(32), 3 * np.arange(32)).astype(np.uint8)
  Image.fromarray(np.stack([gradient] * 3, -1)).save(buffer, format='PNG')
  source = [{'image': buffer.getvalue(), 'label': 0}] * 40
  firsts = [next(iter(pipeline.train_dataset(source, _config(), p, 2)))
            for p in range(2)]
  for j in range(2):
    assert not np.array_equal(firsts[0]['image'][j], firsts[1]['image'][j])


def test_starting_at_a_step_continues_the_same_batches():
  """A resumed run starts its pipeline at the restored step: no saved state,
  whatever the worker count."""
  source, config = _source(40), _config()
  iterator = iter(pipeline.train_dataset(source, config, 0, 1))
  _take(iterator, 7)
  expected = _take(iterator, 6)  # crosses an epoch boundary
  resumed = iter(pipeline.train_dataset(source, _config(num_workers=2), 0, 1,
                                        first_step=7))
  for a, b in zip(expected, _take(resumed, 6)):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  resumed.close()


def test_progressive_resizing_changes_size_not_examples_and_resumes_anywhere():
  """((6, 3), (10, 5)): steps 1-3 at 6 px, 4-5 at 10, then image_size (8).
  The examples and labels are those of an unresized run, and a pipeline
  started at any step gives the same batches as the whole run's."""
  source, config = _source(40), _config()
  config.progressive_resizing = ((6, 3), (10, 5))
  whole = _take(pipeline.train_batches(source, config, 0, 1), 8)
  assert [b['image'].shape[1] for b in whole] == [6, 6, 6, 10, 10, 8, 8, 8]
  plain = _take(iter(pipeline.train_dataset(source, _config(), 0, 1)), 8)
  assert [_indices(b['image']) for b in whole] == [
      _indices(b['image']) for b in plain]
  for first_step in (2, 3, 5):
    resumed = pipeline.train_batches(source, config, 0, 1, first_step)
    for a, b in zip(whole[first_step:], _take(resumed, 8 - first_step)):
      np.testing.assert_array_equal(a['image'], b['image'])
      np.testing.assert_array_equal(a['label'], b['label'])
    resumed.close()


def test_worker_processes_give_the_same_batches():
  source = _source(40)
  threads = _take(iter(pipeline.train_dataset(source, _config(), 0, 1)), 6)
  workers = _take(iter(pipeline.train_dataset(
      source, _config(num_workers=2), 0, 1)), 6)
  for a, b in zip(threads, workers):
    np.testing.assert_array_equal(a['image'], b['image'])


def test_too_small_split_is_a_clear_error():
  with pytest.raises(ValueError, match='fewer than one batch'):
    pipeline.train_dataset(_source(3), _config(), 0, 1)
