"""Input pipelines: tfds array_record splits -> grain -> per-process numpy batches.

Training: the run reads one endless stream of examples, and everything about
its g-th example (which photo: a new permutation of the split each epoch, or
a class-balanced draw; its crop, flips and jitter) is drawn from keys of the
seed and g alone. Global batch k is positions [k B, (k + 1) B) of that
stream, and each process reads its own contiguous part of it. So batch k is
the same whatever the process, worker and thread counts, and a run resumed
at step k reads on from batch k: the input pipeline has no state to save.

Evaluation: every example is seen exactly once; the last batch is padded and
the padding masked out, with the same number of batches on every process.
"""

import atexit
import ctypes
import ctypes.util
import itertools
import math
import multiprocessing
import signal
import sys
from typing import Optional

import grain
import numpy as np
import tensorflow_datasets as tfds

from skinjax import errors
from skinjax.data import preprocess
from skinjax.data.prepare import files


def data_source(builder: tfds.core.DatasetBuilder, split: str,
                held_out=()):
  """Random-access split whose images stay encoded: we decode them
  ourselves. Without the photos of the `held_out` classes (names), the
  other labels renumbered in order (see class_names)."""
  source = builder.as_data_source(
      split=split, decoders={'image': tfds.decode.SkipDecoding()})
  if not held_out:
    return source
  return _Relabelled(source, _new_labels(builder, held_out))


def held_out_source(builder: tfds.core.DatasetBuilder, split: str, held_out):
  """The photos of the `held_out` classes in `split`: photos of conditions
  a model trained without them has never seen (labels all 0)."""
  source = builder.as_data_source(
      split=split, decoders={'image': tfds.decode.SkipDecoding()})
  keep = np.where(_new_labels(builder, held_out) < 0, 0, -1)
  return _Relabelled(source, keep)


def class_names(builder: tfds.core.DatasetBuilder, held_out=()) -> list:
  """The dataset's class names without the `held_out` ones."""
  _new_labels(builder, held_out)  # checks the names
  return [n for n in builder.info.features['label'].names
          if n not in held_out]


def _new_labels(builder, held_out) -> np.ndarray:
  """Old label -> new label, -1 for a held-out class; files.CollectionError
  for a name that is not a class."""
  names = builder.info.features['label'].names
  unknown = sorted(set(held_out) - set(names))
  if unknown:
    raise files.CollectionError(
        f'config.dataset.held_out_classes: {unknown} are not classes of '
        f'{builder.name}; its classes: {names}')
  kept = np.array([n not in held_out for n in names])
  return np.where(kept, np.cumsum(kept) - 1, -1)


class _Relabelled:
  """The examples of `source` whose label maps to >= 0, relabelled."""

  def __init__(self, source, new_labels: np.ndarray):
    self._source, self._new_labels = source, new_labels
    self._indices = np.flatnonzero(new_labels[read_labels(source)] >= 0)

  def __len__(self):
    return len(self._indices)

  def __getitem__(self, i):
    example = dict(self._source[int(self._indices[i])])
    example['label'] = self._new_labels[example['label']]
    return example


class TrainPreprocess(grain.transforms.RandomMap):
  """Decode with a random resized crop, flip/rotate, colour jitter (the last
  two left to the train step with augment.on_device)."""

  def __init__(self, image_size: int, augment):
    self.image_size = image_size
    self.on_host = not augment.on_device
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
    if self.on_host:
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
  """Index -> element of `dataset` (a MapDataset runs its transforms with
  that index's keys)."""

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
    image = preprocess.eval_crop(example['image'], self.image_size,
                                 self.crop_fraction)
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
  atexit.unregister(_kill_workers_at_exit)  # registered once
  atexit.register(_kill_workers_at_exit)
  return ds.mp_prefetch(grain.MultiprocessingOptions(
      num_workers=input_config.num_workers,
      per_worker_buffer_size=input_config.worker_buffer_size),
                        worker_init_fn=_leave_signals_to_the_main_process)


def _leave_signals_to_the_main_process(*_):
  """In a data worker: Ctrl-C and SIGTERM reach the whole process group, but
  only the training process may act on them (it finishes the step, saves a
  checkpoint and closes the workers); a worker dying first would crash it.
  (Training starts workers with both blocked, for the moments before this
  runs: skinjax.training.preemption.) A worker still dies with the training
  process, however that ends."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  _die_with_parent()


def _kill_workers_at_exit() -> None:
  """multiprocessing ends the workers still running at exit with SIGTERM,
  which they ignore, then waits for them: kill them first instead."""
  for worker in multiprocessing.active_children():
    worker.kill()


def _die_with_parent():
  """Linux's PR_SET_PDEATHSIG: SIGKILL this process when its parent dies
  (a worker that ignores SIGTERM must not outlive a killed run)."""
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
  except (OSError, AttributeError):  # not Linux: workers end as grain ends them
    pass


class GlobalPosition(grain.transforms.Map):
  """This process's j-th example -> its position in the run's stream: the
  process reads part `process_index` of every global batch."""

  def __init__(self, batch_size: int, process_index: int, process_count: int):
    self.global_batch = batch_size
    self.local_batch = batch_size // process_count
    self.offset = process_index * self.local_batch

  def map(self, j):
    batch, within = divmod(j, self.local_batch)
    return batch * self.global_batch + self.offset + within


def check_train_split(source, batch_size: int) -> None:
  """ConfigError unless the training split fills at least one batch."""
  if len(source) < batch_size:
    raise errors.ConfigError(
        f'config.batch_size={batch_size}: the training split has '
        f'{len(source)} examples, fewer than one batch')


def train_dataset(source, config, process_index: int, process_count: int,
                  first_step: int = 0,
                  image_size: Optional[int] = None) -> grain.IterDataset:
  """Endless augmented batches of `batch_size / process_count`, from global
  batch `first_step` on (a resumed run passes the step it restored), at
  `image_size` (config.image_size when None).

  Examples come in a new random order every epoch or, with
  config.class_balance == 'sampling', with every class drawn equally often.
  """
  check_train_split(source, config.batch_size)
  if config.class_balance == 'sampling':
    stream = (grain.MapDataset.range(len(source)).seed(config.seed)
              .repeat(None).random_map(BalancedIndex(read_labels(source)))
              .map(Lookup(source)))
  else:  # reshuffled with a new permutation every epoch
    stream = grain.MapDataset.source(source).seed(config.seed).shuffle(
        ).repeat(None)
  stream = stream.random_map(TrainPreprocess(image_size or config.image_size,
                                             config.augment))
  local_batch = config.batch_size // process_count
  ds = (grain.MapDataset.range(first_step * local_batch, sys.maxsize)
        .map(GlobalPosition(config.batch_size, process_index, process_count))
        .map(Lookup(stream))
        # Batch by index before parallel reading, so batch i holds the same
        # examples whatever the worker and thread counts.
        .batch(local_batch, drop_remainder=True))
  return _maybe_multiprocess(ds.to_iter_dataset(_read_options(config.input)),
                             config.input)


def train_batches(source, config, process_index: int, process_count: int,
                  first_step: int = 0):
  """train_dataset's batches from global batch `first_step` on, each at its
  step's size (config.progressive_resizing): one pipeline per size, started
  at the batch where the one before stopped. The batches are those of
  (seed, step) whatever the sizes, so a run resumed across a size change
  continues exactly. Closing the generator stops its workers."""
  batch = first_step
  phases = (*config.progressive_resizing, (config.image_size, sys.maxsize))
  for size, until_step in phases:  # step s takes global batch s - 1
    if until_step <= batch:
      continue
    iterator = iter(train_dataset(source, config, process_index,
                                  process_count, batch, size))
    try:
      yield from itertools.islice(iterator, until_step - batch)
    finally:
      iterator.close()
    batch = until_step


def eval_image_size(config) -> int:
  """The size photos are scored at: validation, evaluate, predict, serve."""
  return config.eval_image_size or config.image_size


def eval_dataset(source, config, process_index: int,
                 process_count: int) -> grain.IterDataset:
  """One pass over the split in batches of `eval_batch_size / process_count`."""
  return _one_pass(source, config, process_index, process_count,
                   lambda ds: ds.map(EvalPreprocess(
                       eval_image_size(config),
                       config.augment.eval_crop_fraction)))


def _one_pass(source, config, process_index: int, process_count: int,
              preprocess) -> grain.IterDataset:
  """This process's shard of `source`, padded to whole batches of
  `eval_batch_size / process_count` with the padding masked, each element
  through `preprocess` (a function of the MapDataset)."""
  batch_size = config.eval_batch_size // process_count
  shard_size = math.ceil(len(source) / process_count)
  length = math.ceil(shard_size / batch_size) * batch_size
  ds = preprocess(grain.MapDataset.source(
      PaddedShard(source, process_index, process_count, length))).batch(
          batch_size)
  return _maybe_multiprocess(ds.to_iter_dataset(_read_options(config.input)),
                             config.input)


class ViewPreprocess(grain.transforms.RandomMap):
  """An augmented view of an example, as training draws them (random resized
  crop, flips, jitter, all on the host), keeping the padding mask."""

  def __init__(self, image_size: int, augment):
    self.train = TrainPreprocess(image_size, augment)
    self.train.on_host = True

  def random_map(self, element, rng: np.random.Generator):
    example, is_real = element
    return {**self.train.random_map(example, rng), 'mask': np.bool_(is_real)}


def view_dataset(source, config, view: int) -> grain.IterDataset:
  """One pass over `source` in order, in padded and masked batches of
  eval_batch_size, at the scoring size: view 0 the centre crop that scoring
  sees (eval_dataset), view v > 0 an augmented view drawn from keys of
  (config.seed, v) and each example's index alone, so a view is the same
  however often it is computed."""
  if view == 0:
    return eval_dataset(source, config, 0, 1)
  return _one_pass(source, config, 0, 1, lambda ds: ds.seed(
      config.seed * 1_000_003 + view).random_map(
          ViewPreprocess(eval_image_size(config), config.augment)))
