"""Dataset registry: names in `config.dataset.name` -> tfds builder classes.

Importing a builder module registers it with tensorflow-datasets. Real
datasets are prepared from files the user already has
(`config.dataset.manual_dir`); nothing is downloaded.
"""

import os
import tempfile

import jax
from jax.experimental import multihost_utils
import tensorflow_datasets as tfds

from skinjax.data.builders import dermamnist
from skinjax.data.builders import dermnet
from skinjax.data.builders import ham10000
from skinjax.data.builders import image_folder
from skinjax.data.builders import prepared_photos
from skinjax.data import prepared_folders
from skinjax.data.builders import synthetic_lesions
from skinjax.data.prepare import files

DATASETS = {
    'dermamnist': dermamnist.Dermamnist,
    'dermnet': dermnet.Dermnet,
    'ham10000': ham10000.Ham10000,
    'image_folder': image_folder.ImageFolder,
    'synthetic_lesions': synthetic_lesions.SyntheticLesions,
}


def get_builder(dataset_config) -> tfds.core.DatasetBuilder:
  """The builder for `dataset_config.name` ('name' or 'name/config').

  For collections prepared from image files, the preparation settings of
  `dataset_config` (short side, split fractions, split seed) select the
  builder config, so differently prepared data never share a folder.
  """
  base, _, variant = dataset_config.name.partition('/')
  builder_cls = DATASETS[base]
  builder_config = variant or None
  if issubclass(builder_cls, prepared_photos.PreparedPhotosBuilder):
    known = {c.name: c for c in builder_cls.BUILDER_CONFIGS}
    variant = variant or next(iter(known), 'default')
    builder_config = prepared_photos.configure(
        known.get(variant, prepared_photos.PreparedPhotosConfig(name=variant)),
        dataset_config)
    if builder_config is known.get(builder_config.name):
      # By name: tfds refuses a copy of a registered config, and grain's
      # worker processes get the builder pickled, config copied.
      builder_config = builder_config.name
  return builder_cls(config=builder_config,
                     data_dir=os.path.expanduser(dataset_config.data_dir),
                     file_format='array_record')


def prepare(builder: tfds.core.DatasetBuilder, manual_dir: str = '') -> None:
  """Builds the dataset's array_record files unless they are already there.

  `manual_dir` is a folder or a single archive of the user's files. tfds
  writes into a temporary folder and renames it when complete, so an
  interrupted preparation is redone rather than half-used; one process
  prepares a dataset at a time, and removes what killed ones left.
  """
  if builder.is_prepared():
    return
  name = _full_name(builder)
  needs_files = builder.MANUAL_DOWNLOAD_INSTRUCTIONS
  path = _manual_path(manual_dir)
  if needs_files:
    expected = ' '.join(needs_files.split())
    if not path:
      raise files.CollectionError(
          f'{name} is prepared from your own copy of {expected}')
    if not os.path.exists(path):
      raise files.CollectionError(
          f'dataset.manual_dir {path} does not exist')
    if os.path.isdir(path) and not os.listdir(path):
      raise files.CollectionError(
          f'dataset.manual_dir {path} is empty; expected {expected}')
  with prepared_folders.exclusive(builder):
    prepared_folders.remove_leftovers(builder)
    if builder.is_prepared():  # by the process this one waited for
      return
    print(f'Preparing {name} in {builder.data_dir} (first use only).',
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
      if os.path.isfile(path):  # an archive; tfds wants a folder around it
        os.symlink(path, os.path.join(folder, os.path.basename(path)))
        path = folder
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(
              manual_dir=path or None))


def load_builder(dataset_config) -> tfds.core.DatasetBuilder:
  """The configured dataset, prepared by process 0 on first use."""
  if jax.process_index() == 0:
    prepare(get_builder(dataset_config), dataset_config.manual_dir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('skinjax dataset prepared')
  return get_builder(dataset_config)


def _full_name(builder) -> str:
  return f'{builder.name}/{builder.builder_config.name}'


def _manual_path(manual_dir: str) -> str:
  return os.path.abspath(os.path.expanduser(manual_dir)) if manual_dir else ''
