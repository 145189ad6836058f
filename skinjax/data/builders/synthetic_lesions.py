"""synthetic_lesions: the embedded dataset, drawn procedurally, no download.

A tensorflow-datasets builder that writes array_record files of JPEG-encoded
synthetic skin photos (see lesion_drawing.py for what is drawn and why mean
colour cannot tell the classes apart). Every image is a pure function of
(seed, split, index), so the dataset is identical on every machine.
"""

from concurrent import futures
import dataclasses
import io
import multiprocessing
import os

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from skinjax.data.builders import common
from skinjax.data.builders import lesion_drawing

_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}


@dataclasses.dataclass
class SyntheticLesionsConfig(tfds.core.BuilderConfig):
  image_size: int = 96
  num_train: int = 4200
  num_validation: int = 600
  num_test: int = 1200
  seed: int = 0
  jpeg_quality: int = 92


class SyntheticLesions(common.SkinjaxBuilder,
                       tfds.core.GeneratorBasedBuilder):
  """Synthetic skin photos in six morphological classes."""

  VERSION = tfds.core.Version('1.2.0')
  RELEASE_NOTES = {'1.0.0': 'First release.',
                   '1.1.0': 'Class counts in the dataset info metadata.',
                   '1.2.0': "Each example's drawn skin tone ('skin_rgb'), the "
                            'truth skin-tone estimates are checked against; '
                            'images unchanged.'}
  BUILDER_CONFIGS = [
      SyntheticLesionsConfig(
          name='default',
          description='96 px, 4200/600/1200 images, balanced classes.'),
      SyntheticLesionsConfig(
          name='small', image_size=64, num_train=240, num_validation=60,
          num_test=60, description='For smoke tests: builds in seconds.'),
  ]

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        **self._about(__doc__),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(
                shape=(self.builder_config.image_size,) * 2 + (3,),
                encoding_format='jpeg'),
            'label': tfds.features.ClassLabel(
                names=lesion_drawing.CLASS_NAMES),
            'id': tfds.features.Text(),
            # The skin colour drawn, before lighting and noise (RGB, 0-255).
            'skin_rgb': tfds.features.Tensor(shape=(3,), dtype=np.float32),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://github.com/skinjax/skinjax',
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    sizes = {'train': self.builder_config.num_train,
             'validation': self.builder_config.num_validation,
             'test': self.builder_config.num_test}
    names = lesion_drawing.CLASS_NAMES
    self.info.metadata['class_counts'] = {  # labels are index % classes
        split: {name: len(range(i, n, len(names))) for i, name in
                enumerate(names)} for split, n in sizes.items()}
    return {split: self._generate_examples(split, n)
            for split, n in sizes.items()}

  def _generate_examples(self, split, num_examples):
    cfg = self.builder_config
    jobs = [(cfg.seed, _SPLIT_IDS[split], i, cfg.image_size, cfg.jpeg_quality)
            for i in range(num_examples)]
    # Drawing is CPU-bound numpy; spawn (not fork) keeps it safe to call from
    # a process that already runs JAX threads.
    workers = min(len(os.sched_getaffinity(0)), 16)
    with futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context('spawn')) as pool:
      for key, example in pool.map(_draw_example, jobs, chunksize=64):
        example['id'] = f'{split}_{key:05d}'
        yield key, example


def _draw_example(job):
  seed, split_id, index, size, quality = job
  label = index % len(lesion_drawing.CLASS_NAMES)  # balanced classes
  rng = np.random.default_rng([seed, split_id, index])
  image, tone = lesion_drawing.draw(rng, label, size)
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='JPEG', quality=quality)
  return index, {'image': buffer.getvalue(), 'label': label,
                 'skin_rgb': tone.astype(np.float32)}
