"""Input pipelines: tfds array_record splits -> grain -> per-process numpy batches.

Training: every process reads its own slice of the split, reshuffled each
epoch from the config seed; augmentation draws from a per-example RNG, so a
batch depends only on (seed, step) and not on worker count or timing. The
returned grain iterator is checkpointable, which is how a resumed run sees
exactly the batches an uninterrupted run would have seen.

Evaluation: every example is seen exactly once; the last batch is padded and
the padding masked out, with the same number of batches on every process.
"""

import math

import grain
import numpy as np
import tensorflow_datasets as tfds

from skinjax.data import preprocess


def data_source(builder: tfds.core.DatasetBuilder, split: str):
  """Random-access split whose images stay encoded: we decode them ourselves."""
  return builder.as_data_source(
      split=split, decoders={'image': tfds.decode.SkipDecoding()})


class TrainPreprocess(grain.transforms.RandomMap):
  """Decode with a random resized crop, flip/rotate, colour jitter."""

  def __init__(self, image_size: int, augment):
    self.image_size = image_size
    self.crop_scale = tuple(augment.crop_scale)
    self.crop_ratio = tuple(augment.crop_ratio)
    self.symmetries = dict(hflip=augment.hflip, vflip=augment.vflip,
                           rot90=augment.rot90)
    self.jitter = dict(brightness=augment.brightness,
                       contrast=augment.contrast,
                       saturation=augment.saturation)

  def random_map(self, example, rng: np.random.Generator):
    image = preprocess.open_image(example['image'])
    image = preprocess.random_resized_crop(image, rng, self.image_size,
                                           self.crop_scale, self.crop_ratio)
    image = preprocess.flip_and_rotate(image, rng, **self.symmetries)
    image = preprocess.colour_jitter(image, rng, **self.jitter)
    return {'image': image, 'label': np.int32(example['label'])}


class BalancedIndex(grain.transforms.RandomMap):
  """Draws a class uniformly, then one of its examples, with replacement."""

  def __init__(self, labels):
    self.members = [np.flatnonzero(labels == c) for c in np.unique(labels)]

  def random_map(self, _, rng: np.random.Generator):
    members = self.members[rng.integers(len(self.members))]
    return int(members[rng.integers(len(members))])


class Lookup(grain.transforms.Map):
  """Index -> example of `dataset`."""

  def __init__(self, dataset):
    self.dataset = dataset

  def map(self, index):
    return self.dataset[index]


def read_labels(dataset) -> np.ndarray:
  """The label of every example (reads each record once)."""
  return np.array([dataset[i]['label'] for i in range(len(dataset))], np.int64)


class EvalPreprocess(grain.transforms.Map):
  """Decode the centre crop; keep the mask that marks padding."""

  def __init__(self, image_size: int, crop_fraction: float):
    self.image_size = image_size
    self.crop_fraction = crop_fraction

  def map(self, element):
    example, is_real = element
    image = preprocess.center_crop(preprocess.open_image(example['image']),
                                   self.image_size, self.crop_fraction)
    return {'image': image, 'label': np.int32(example['label']),
            'mask': np.bool_(is_real)}


class PaddedShard:
  """One process's strided shard of a source, padded to `length` elements.

  Elements are (example, is_real); padding repeats a real example so it
  decodes like any other and is then masked out.
  """

  def __init__(self, source, process_index: int, process_count: int,
               length: int):
    self._source = source
    self._indices = range(process_index, len(source), process_count)
    self._length = length

  def __len__(self):
    return self._length

  def __getitem__(self, i):
    if i < len(self._indices):
      return self._source[self._indices[i]], True
    return self._source[self._indices[0] if self._indices else 0], False


def _read_options(input_config):
  return grain.ReadOptions(num_threads=input_config.num_threads,
                           prefetch_buffer_size=input_config.prefetch_buffer_size)


def _maybe_multiprocess(ds: grain.IterDataset, input_config) -> grain.IterDataset:
  if input_config.num_workers == 0:
    return ds
  return ds.mp_prefetch(grain.MultiprocessingOptions(
      num_workers=input_config.num_workers,
      per_worker_buffer_size=input_config.worker_buffer_size))


def train_dataset(source, config, process_index: int,
                  process_count: int) -> grain.IterDataset:
  """Endless augmented batches of `batch_size / process_count`.

  Examples come in a new random order every epoch or, with
  config.class_balance == 'sampling', with every class drawn equally often.
  """
  batch_size = config.batch_size // process_count
  shard = grain.MapDataset.source(source)[process_index::process_count]
  if len(shard) < batch_size:
    raise ValueError(f'The training split has {len(shard)} examples for this '
                     f'process, fewer than one batch ({batch_size}).')
  if config.class_balance == 'sampling':
    ds = (grain.MapDataset.range(len(shard)).seed(config.seed).repeat(None)
          .random_map(BalancedIndex(read_labels(shard))).map(Lookup(shard)))
  else:  # reshuffled with a new permutation every epoch
    ds = shard.seed(config.seed).shuffle().repeat(None)
  ds = (ds.random_map(TrainPreprocess(config.image_size, config.augment))
        # Batch by index before parallel reading, so batch i holds the same
        # examples whatever the worker and thread counts.
        .batch(batch_size, drop_remainder=True))
  return _maybe_multiprocess(ds.to_iter_dataset(_read_options(config.input)),
                             config.input)


def eval_dataset(source, config, process_index: int,
                 process_count: int) -> grain.IterDataset:
  """One pass over the split in batches of `eval_batch_size / process_count`."""
  batch_size = config.eval_batch_size // process_count
  shard_size = math.ceil(len(source) / process_count)
  length = math.ceil(shard_size / batch_size) * batch_size
  ds = (grain.MapDataset.source(
      PaddedShard(source, process_index, process_count, length))
        .map(EvalPreprocess(config.image_size,
                            config.augment.eval_crop_fraction))
        .batch(batch_size))
  return _maybe_multiprocess(ds.to_iter_dataset(_read_options(config.input)),
                             config.input)
