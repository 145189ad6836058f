"""Dataset registry: names in `config.dataset.name` -> tfds builder classes.

Importing a builder module registers it with tensorflow-datasets; real
datasets prepared from a user's own files plug in here next to the embedded
one.
"""

import os

import jax
from jax.experimental import multihost_utils
import tensorflow_datasets as tfds

from skinjax.data import synthetic_lesions

DATASETS = {
    'synthetic_lesions': synthetic_lesions.SyntheticLesions,
}


def get_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """The builder for 'name' or 'name/builder_config', writing array_record."""
  base, _, builder_config = name.partition('/')
  return DATASETS[base](config=builder_config or None,
                        data_dir=os.path.expanduser(data_dir),
                        file_format='array_record')


def prepare(builder: tfds.core.DatasetBuilder, manual_dir: str = '') -> None:
  """Builds the dataset's array_record files unless they are already there.

  tfds writes into a temporary folder and renames it when complete, so an
  interrupted preparation is redone rather than half-used.
  """
  if builder.is_prepared():
    return
  print(f'Preparing {builder.info.full_name} in {builder.data_dir} (first use '
        'only).', flush=True)
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir) if manual_dir else None)
  builder.download_and_prepare(download_config=download_config)


def load_builder(dataset_config) -> tfds.core.DatasetBuilder:
  """The configured dataset, prepared by process 0 on first use."""
  if jax.process_index() == 0:
    prepare(get_builder(dataset_config.name, dataset_config.data_dir),
            dataset_config.manual_dir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('skinjax dataset prepared')
  return get_builder(dataset_config.name, dataset_config.data_dir)
