"""image_folder: any folder of photos sorted into one folder per class.

For a clinic's own collection: `dataset.name = 'image_folder/<collection>'`
and `dataset.manual_dir` pointing at either

  <manual_dir>/{train,validation,test}/<class>/<image>   (val/ also accepted)
  <manual_dir>/<class>/<image>                           (all becomes train)

Class names are the folder names, sorted. Splits the tree does not have are
carved from train (`dataset.validation_fraction`, `dataset.test_fraction`)
by a stable hash of each photo's bytes (skinjax.data.prepare.splits), so a
photo keeps its split as the collection grows. Each <collection> name is
prepared in its own folder; a bare `image_folder` is refused.
"""

import tensorflow_datasets as tfds

from skinjax.data.builders import prepared_photos
from skinjax.data.prepare import collection
from skinjax.data.prepare import files

_SPLIT_FOLDERS = {'train': 'train', 'validation': 'validation',
                  'val': 'validation', 'test': 'test'}


class ImageFolder(prepared_photos.PreparedPhotosBuilder):
  """A user's class-per-folder photo collection."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '2.0.0': prepared_photos.STABLE_SPLITS,
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  a folder with one sub-folder of images per class, optionally below
  train/, validation/ and test/ folders.
  """

  def _class_names(self):
    return None  # the folders', set when the dataset is prepared

  def _find_candidates(self, root, found):
    located = []  # (file, split, class folder)
    for file in found:
      parts = files.relative_parts(file, root)
      if len(parts) >= 3 and parts[0].lower() in _SPLIT_FOLDERS:
        located.append((file, _SPLIT_FOLDERS[parts[0].lower()], parts[1]))
      elif len(parts) >= 2 and parts[0].lower() not in _SPLIT_FOLDERS:
        located.append((file, 'train', parts[0]))
    class_names = sorted({folder for _, _, folder in located})
    self.info.features['label'].names = class_names
    label_of = {name: i for i, name in enumerate(class_names)}
    candidates = [collection.Candidate(file, label_of[folder], split)
                  for file, split, folder in located]
    splits = {c.split for c in candidates}
    carve = {split: getattr(self.builder_config, f'{split}_fraction')
             for split in ('test', 'validation') if split not in splits}
    return candidates, carve, {}
