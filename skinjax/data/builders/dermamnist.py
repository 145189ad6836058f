"""dermamnist: MedMNIST's DermaMNIST (HAM10000 resized), with its own splits.

Prepared from the `dermamnist.npz` (28 px), `dermamnist_64.npz`,
`dermamnist_128.npz` or `dermamnist_224.npz` file the user downloaded;
configs `dermamnist/28`, `/64`, `/128`, `/224`. Images are stored as PNG:
they are already small and lossless is cheap at this size.
"""

import io
import os

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from skinjax.data.builders import common
from skinjax.data.builders import ham10000
from skinjax.data.prepare import files

_SPLITS = {'train': 'train', 'validation': 'val', 'test': 'test'}


class Dermamnist(common.SkinjaxBuilder, tfds.core.GeneratorBasedBuilder):
  """DermaMNIST at 28, 64, 128 or 224 px."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=str(size))
                     for size in (28, 64, 128, 224)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  the MedMNIST file dermamnist.npz (28 px) or dermamnist_{64,128,224}.npz.
  Download from https://zenodo.org/records/10519652 and set
  dataset.manual_dir to the folder that holds it.
  """

  def _info(self):
    size = int(self.builder_config.name)
    return tfds.core.DatasetInfo(
        builder=self,
        **self._about(__doc__),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(size, size, 3),
                                         encoding_format='png'),
            'label': tfds.features.ClassLabel(
                names=[code for code, _ in ham10000.DIAGNOSES]),
            'id': tfds.features.Text(),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://medmnist.com',
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    size = self.builder_config.name
    name = 'dermamnist.npz' if size == '28' else f'dermamnist_{size}.npz'
    path = os.path.join(dl_manager.manual_dir, name)
    if not os.path.exists(path):
      raise files.CollectionError(
          f'{name} not found in {dl_manager.manual_dir}')
    with np.load(path) as arrays:
      data = {split: (arrays[f'{key}_images'], arrays[f'{key}_labels'].ravel())
              for split, key in _SPLITS.items()}
    names = self.info.features['label'].names
    self.info.metadata['class_counts'] = {
        split: dict(zip(names, np.bincount(labels, minlength=len(names))
                        .tolist())) for split, (_, labels) in data.items()}
    return {split: self._generate_examples(split, *arrays)
            for split, arrays in data.items()}

  def _generate_examples(self, split, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      if image.ndim == 2:  # the 28 px release is RGB; be safe with grey
        image = np.stack([image] * 3, axis=-1)
      buffer = io.BytesIO()
      Image.fromarray(image).save(buffer, format='PNG')
      key = f'{split}_{i:05d}'
      yield key, {'image': buffer.getvalue(), 'label': int(label), 'id': key}
