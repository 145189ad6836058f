"""The common base of builders whose examples are photos of the user's own
files, prepared once (skinjax.data.prepare.collection): dermnet, ham10000,
image_folder.

A subclass says which classes it has and where its files are
(`_find_candidates`); this base holds what they share: the features, the
preparation, the examples, and the preparation settings that select the
prepared folder.
"""

import dataclasses
import sys

import tensorflow_datasets as tfds

from skinjax.data.builders import common
from skinjax.data.prepare import collection
from skinjax.data.prepare import decode
from skinjax.data.prepare import files
from skinjax.data.prepare import sources


# The release note of the version that carves splits by hash.
STABLE_SPLITS = ('Splits carved by a keyed hash of each group (lesion, '
                 'duplicates, else file bytes) and split_seed: adding or '
                 'removing photos moves no other photo between splits. '
                 'Records the files it was prepared from.')


@dataclasses.dataclass
class PreparedPhotosConfig(tfds.core.BuilderConfig):
  """How a collection is prepared; non-default values get their own folder."""
  max_short_side: int = 256
  max_image_pixels: int = decode.MAX_IMAGE_PIXELS  # larger photos are skipped
  jpeg_quality: int = decode.JPEG_QUALITY
  validation_fraction: float = 0.1  # carved from train when it has none
  test_fraction: float = 0.2  # carved from train when there is no test split
  split_seed: int = 0


def configure(builder_config: PreparedPhotosConfig, dataset_config):
  """`builder_config` with the preparation settings of `dataset_config`.

  The name gains a suffix per setting that differs from the builder's
  default, so differently prepared data never share a folder:
  'dermnet/23' vs 'dermnet/23-val0.2-512px'. The pixel limit is one of
  them: it decides which photos are kept.
  """
  changes = {k: dataset_config[k] for k in (
      'max_short_side', 'max_image_pixels', 'validation_fraction',
      'test_fraction', 'split_seed')
             if dataset_config[k] != getattr(builder_config, k)}
  if not changes:
    return builder_config
  suffix = {'max_short_side': '{}px', 'max_image_pixels': 'max{}pixels',
            'validation_fraction': 'val{}', 'test_fraction': 'test{}',
            'split_seed': 'split{}'}
  name = '-'.join([builder_config.name] +
                  [suffix[k].format(v) for k, v in changes.items()])
  return dataclasses.replace(builder_config, name=name, **changes)


class PreparedPhotosBuilder(common.SkinjaxBuilder,
                            tfds.core.GeneratorBasedBuilder,
                            skip_registration=True):
  """A tfds builder of JPEG photos with a label and an id, plus the extra
  features a subclass declares."""

  HOMEPAGE = None

  def _class_names(self):
    """The label names, or None when they come from the files at
    preparation time (set them on self.info.features['label'].names)."""
    raise NotImplementedError

  def _extra_features(self) -> dict:
    return {}

  def _metadata(self) -> dict:
    return {}

  def _find_candidates(self, root: str, found: list) -> tuple:
    """(candidates, carve, notes) for collection.prepare_splits from the
    files `found` under `root`: those that become examples, the splits to
    carve from train, and findings for the report."""
    raise NotImplementedError

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        **self._about(sys.modules[type(self).__module__].__doc__),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3),
                                         encoding_format='jpeg'),
            'label': tfds.features.ClassLabel(names=self._class_names()),
            'id': tfds.features.Text(),
            **self._extra_features(),
        }),
        supervised_keys=('image', 'label'),
        homepage=self.HOMEPAGE,
        metadata=tfds.core.MetadataDict(**self._metadata()),
    )

  def _split_generators(self, dl_manager):
    root = str(dl_manager.manual_dir)
    listing = files.list_files(root)
    sources.record(self.data_dir, root, listing)  # before decoding takes time
    candidates, carve, notes = self._find_candidates(root, listing.files)
    splits = collection.prepare_splits(
        self, candidates, root=root, carve=carve,
        notes={**notes, 'files_not_listed': listing.skipped})
    return {split: self._generate_examples(items, root)
            for split, items in splits.items()}

  def _generate_examples(self, items, root):
    yield from collection.examples(items, root)
