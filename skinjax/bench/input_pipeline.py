"""Input pipeline throughput: skinjax's grain pipeline against a plain loop.

Both decode the same prepared JPEGs with the same per-image work
(skinjax.data.pipeline.TrainPreprocess: random resized crop decoded at reduced
size where the JPEG allows, flips, rotations and colour jitter as configured,
or left to the train step with augment.on_device; normalisation happens on
the device). The plain loop shows what the decode
costs by itself; grain's rows show its overhead and how it scales with worker
processes. Images per CPU-second counts the CPU time of the main process and
of every worker, so it is the throughput one fully busy core buys.
"""

import copy
import os
import time

import numpy as np
from PIL import Image

from skinjax import data
from skinjax.bench import hardware
from skinjax.data import pipeline
from skinjax.data import preprocess
from skinjax.data.builders import lesion_drawing

# Landscape 4:3 photos with a 256 px short side, as datasets are prepared.
_PHOTO_WIDTH, _PHOTO_HEIGHT = 342, 256
# Sensor noise (std, 0-255) that brings the JPEGs to the size of real
# clinical photos, which sets the decode cost: 23 KB on average at quality
# 90, against 21 KB for DermNet NZ photos prepared by skinjax.
_NOISE = 3.0
# Lesion drawings are slow (0.1 s each); photos beyond this many per class
# reuse one of their class under fresh noise, still a distinct JPEG.
_DRAWINGS_PER_CLASS = 20


def write_photos(root: str, num_images: int, seed: int = 0) -> None:
  """<root>/<class>/<i>.jpg: synthetic skin photos, one class per folder."""
  names = lesion_drawing.CLASS_NAMES
  num_drawings = _DRAWINGS_PER_CLASS * len(names)  # photo i has class i % n
  drawings = []
  for i in range(num_images):
    rng = np.random.default_rng([seed, i])
    label = i % len(names)
    if i < num_drawings:
      drawings.append(lesion_drawing.draw_image(rng, label, _PHOTO_WIDTH)[
          :_PHOTO_HEIGHT])
    pixels = drawings[i % num_drawings] + rng.normal(0, _NOISE, (
        _PHOTO_HEIGHT, _PHOTO_WIDTH, 3))
    folder = os.path.join(root, names[label])
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        os.path.join(folder, f'{i}.jpg'), quality=95)


def use_generated_dataset(config, folder: str, num_images: int):
  """`config` reading an image_folder dataset of generated photos in `folder`.

  Preparation is skinjax's own (image_folder builder), so the benchmark reads
  exactly what training reads; every image goes to the train split.
  """
  config = copy.deepcopy(config)
  photos = os.path.join(folder, 'photos')
  write_photos(photos, num_images)
  config.dataset.update(name='image_folder/bench', manual_dir=photos,
                        data_dir=os.path.join(folder, 'tfds'),
                        validation_fraction=0.0, test_fraction=0.0,
                        train_split='train')
  return config


def _time_batches(batches, num_batches: int, batch_size: int) -> dict:
  cpu_start, start = hardware.cpu_seconds(), time.perf_counter()
  for _ in range(num_batches):
    next(batches)
  seconds = time.perf_counter() - start
  cpu = hardware.cpu_seconds() - cpu_start
  images = num_batches * batch_size
  return {'images_per_second': images / seconds,
          'images_per_cpu_second': images / cpu,
          'cores_busy': cpu / seconds}


def grain_throughput(source, config, num_workers: int,
                     num_batches: int) -> dict:
  """skinjax.data.pipeline.train_dataset with `num_workers` processes."""
  config = copy.deepcopy(config)
  config.input.num_workers = num_workers
  start = time.perf_counter()
  batches = iter(pipeline.train_dataset(source, config, 0, 1))
  next(batches)
  startup = time.perf_counter() - start
  # Drain what the workers buffered while the first batch was awaited, so
  # the timed rate is the steady one.
  for _ in range(num_workers * config.input.worker_buffer_size + 1):
    next(batches)
  result = _time_batches(batches, num_batches, config.batch_size)
  batches.close()
  return {'loader': 'grain', 'num_workers': num_workers,
          'num_threads': config.input.num_threads,
          'startup_seconds': startup, **result}


def plain_loop_throughput(source, config, num_batches: int) -> dict:
  """The same per-image work in one single-threaded Python loop, no grain."""
  transform = pipeline.TrainPreprocess(config.image_size, config.augment)
  rng = np.random.default_rng(config.seed)

  def batches():
    while True:
      examples = [transform.random_map(source[int(i)], rng) for i in
                  rng.integers(len(source), size=config.batch_size)]
      yield {key: np.stack([e[key] for e in examples]) for key in examples[0]}

  return {'loader': 'plain loop', 'num_workers': 0, 'num_threads': 1,
          **_time_batches(batches(), num_batches, config.batch_size)}


def run(config, image_sizes, worker_counts, num_batches: int) -> dict:
  """Every loader at every image size, on config.dataset's train split."""
  builder = data.load_builder(config.dataset)
  source = pipeline.data_source(builder, config.dataset.train_split)
  sample = [source[i]['image'] for i in range(min(len(source), 64))]
  results = []
  for size in image_sizes:
    sized = copy.deepcopy(config)
    sized.image_size = size
    rows = [plain_loop_throughput(source, sized, num_batches)]
    rows += [grain_throughput(source, sized, w, num_batches)
             for w in worker_counts]
    results += [{'image_size': size, **row} for row in rows]
  return {
      'dataset': config.dataset.name,
      'num_examples': len(source),
      'mean_jpeg_bytes': float(np.mean([len(s) for s in sample])),
      'mean_short_side': float(np.mean([min(preprocess.open_image(s).size)
                                        for s in sample])),
      'batch_size': config.batch_size,
      'augment': config.augment.to_dict(),
      'results': results,
      'notes': ['tf.data: not measured; skinjax has no tf.data loader and '
                'does not depend on TensorFlow.'],
  }
