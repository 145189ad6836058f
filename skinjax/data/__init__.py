"""Dataset registry: names in `config.dataset.name` -> tfds builder classes.

Importing a builder module registers it with tensorflow-datasets. Real
datasets are prepared from files the user already has
(`config.dataset.manual_dir`); nothing is downloaded.
"""

import os
import re
import sys
import tempfile

import jax
from jax.experimental import multihost_utils
import tensorflow_datasets as tfds

from skinjax import errors
from skinjax.data import prepared_folders
from skinjax.data.builders import dermamnist
from skinjax.data.builders import dermnet
from skinjax.data.builders import ham10000
from skinjax.data.builders import image_folder
from skinjax.data.builders import prepared_photos
from skinjax.data.builders import synthetic_lesions
from skinjax.data.prepare import files
from skinjax.data.prepare import sources

DATASETS = {
    'dermamnist': dermamnist.Dermamnist,
    'dermnet': dermnet.Dermnet,
    'ham10000': ham10000.Ham10000,
    'image_folder': image_folder.ImageFolder,
    'synthetic_lesions': synthetic_lesions.SyntheticLesions,
}


# A collection's name becomes a folder under data_dir: one plain name, no
# '/', '\\', '..' or leading dot that could lead out of it.
_VARIANT = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,99}')


def check_name(name: str) -> None:
  """Refuses a config.dataset.name whose collection part is not one plain
  folder name ('image_folder/../../x' would prepare outside data_dir)."""
  _, slash, variant = name.partition('/')
  if slash and not (_VARIANT.fullmatch(variant) and '..' not in variant):
    raise errors.ConfigError(
        f'config.dataset.name={name!r}: after the dataset, one collection '
        'name of letters, digits, ".", "_" and "-" (no "/", "\\" or "..")')


def get_builder(dataset_config) -> tfds.core.DatasetBuilder:
  """The builder for `dataset_config.name` ('name' or 'name/config').

  For collections prepared from image files, the preparation settings of
  `dataset_config` (short side, split fractions, split seed) select the
  builder config, so differently prepared data never share a folder; a
  builder with no configs of its own (image_folder) needs the collection
  named, so two collections never share one either.
  """
  check_name(dataset_config.name)
  base, _, variant = dataset_config.name.partition('/')
  builder_cls = DATASETS[base]
  builder_config = variant or None
  if issubclass(builder_cls, prepared_photos.PreparedPhotosBuilder):
    known = {c.name: c for c in builder_cls.BUILDER_CONFIGS}
    if not (variant or known):
      raise files.CollectionError(
          f'config.dataset.name={base!r}: name the collection, e.g. '
          f"'{base}/myclinic'; each name is prepared in its own folder")
    variant = variant or next(iter(known))
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


def stale(builder: tfds.core.DatasetBuilder, manual_dir: str) -> str:
  """One line saying how `manual_dir` differs from what the prepared
  dataset was made from; '' if it does not, or if there is nothing to
  compare (not prepared, no manual_dir, or it is gone: the prepared data is
  all there is). Cheap enough for every start: stat calls and zip
  directories, nothing decoded."""
  path = _manual_path(manual_dir)
  if not (builder.is_prepared() and path and os.path.exists(path)):
    return ''
  change = sources.changes(builder.data_dir, path)
  return change and (f'dataset.manual_dir {path} has changed since '
                     f'{_full_name(builder)} was prepared from it: {change}')


def load_builder(dataset_config, reprepare: bool = False
                 ) -> tfds.core.DatasetBuilder:
  """The configured dataset, prepared by process 0 on first use.

  When its manual_dir has changed since, one line says so; with `reprepare`
  it is prepared again from the files as they are now, else used as it was
  prepared.
  """
  if jax.process_index() == 0:
    builder = get_builder(dataset_config)
    change = stale(builder, dataset_config.manual_dir)
    if change and reprepare:
      print(f'{change}; preparing it again.', flush=True)
      prepared_folders.discard(builder)
      builder = get_builder(dataset_config)
    elif change:
      print(f'warning: {change}; using it as prepared (train with '
            'dataset.reprepare=True to prepare it again)', file=sys.stderr,
            flush=True)
    prepare(builder, dataset_config.manual_dir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('skinjax dataset prepared')
  return get_builder(dataset_config)


def _full_name(builder) -> str:
  return f'{builder.name}/{builder.builder_config.name}'


def _manual_path(manual_dir: str) -> str:
  return os.path.abspath(os.path.expanduser(manual_dir)) if manual_dir else ''
