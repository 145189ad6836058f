"""ham10000: dermoscopy images of pigmented lesions, 7 diagnoses.

Prepared from files the user downloaded (Harvard Dataverse or Kaggle):
`HAM10000_metadata.csv` plus the images, either in the original layout
(`HAM10000_images_part_1/`, `HAM10000_images_part_2/`, or their zips) or in
a class-per-folder copy (`<dx>/<image_id>.jpg`). Labels come from the CSV.
Several images show the same lesion, so train/validation/test are split by
`lesion_id`, stratified by diagnosis: no lesion crosses splits. Age, sex and
body site are kept as features.
"""

import csv
import io
import math
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from skinjax.data import image_files

DIAGNOSES = (
    ('akiec', "Actinic keratoses and intraepithelial carcinoma (Bowen's)"),
    ('bcc', 'Basal cell carcinoma'),
    ('bkl', 'Benign keratosis-like lesions'),
    ('df', 'Dermatofibroma'),
    ('mel', 'Melanoma'),
    ('nv', 'Melanocytic nevi'),
    ('vasc', 'Vascular lesions'),
)
METADATA_FILE = 'HAM10000_metadata.csv'


class Ham10000(tfds.core.GeneratorBasedBuilder):
  """HAM10000 dermoscopy, split by lesion."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [image_files.PreparedImagesConfig(
      name='default', validation_fraction=0.1, test_fraction=0.2)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  HAM10000_metadata.csv and the HAM10000 images (folders or zips).
  Download from https://doi.org/10.7910/DVN/DBW86T and set
  dataset.manual_dir to the folder that holds them.
  """

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3),
                                         encoding_format='jpeg'),
            'label': tfds.features.ClassLabel(names=[d for d, _ in DIAGNOSES]),
            'id': tfds.features.Text(),
            'image_id': tfds.features.Text(),
            'lesion_id': tfds.features.Text(),
            'dx_type': tfds.features.Text(),
            'age': tfds.features.Scalar(np.float32),  # NaN when unknown
            'sex': tfds.features.Text(),
            'localization': tfds.features.Text(),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://doi.org/10.7910/DVN/DBW86T',
        metadata=tfds.core.MetadataDict(
            diagnoses={code: name for code, name in DIAGNOSES}),
    )

  def _split_generators(self, dl_manager):
    root = str(dl_manager.manual_dir)
    files = image_files.list_files(root)
    csv_files = [f for f in files if str(f).endswith(METADATA_FILE)]
    if not csv_files:
      raise FileNotFoundError(f'{METADATA_FILE} not found under {root}')
    rows = list(csv.DictReader(io.StringIO(csv_files[0].read().decode())))
    by_image = {}
    for file in files:
      stem = pathlib.PurePosixPath(str(file)).stem
      by_image.setdefault(stem, []).append(file)
    label_of = {code: i for i, (code, _) in enumerate(DIAGNOSES)}
    candidates, missing, disagreements, extra_copies = [], [], 0, 0
    for row in rows:
      found = [f for f in by_image.get(row['image_id'], [])
               if f not in csv_files]
      if not found:
        missing.append(row['image_id'])
        continue
      extra_copies += len(found) - 1
      folder = image_files.relative_parts(found[0], root)[-2:-1]
      disagreements += bool(folder and folder[0] in label_of
                            and folder[0] != row['dx'])
      candidates.append(image_files.Candidate(
          found[0], label_of[row['dx']], 'train', group=row['lesion_id'],
          features=(('image_id', row['image_id']),
                    ('lesion_id', row['lesion_id']),
                    ('dx_type', row['dx_type']),
                    ('age', _age(row['age'])),
                    ('sex', row['sex']),
                    ('localization', row['localization']))))
    listed = {row['image_id'] for row in rows}
    unlisted = sorted(str(f) for stem, fs in by_image.items()
                      if stem not in listed for f in fs
                      if str(f).lower().endswith(('.jpg', '.jpeg', '.png')))
    config = self.builder_config
    splits = image_files.prepare_splits(
        self, candidates, root=root,
        carve={'test': config.test_fraction,
               'validation': config.validation_fraction},
        notes={
            'metadata_rows': len(rows),
            'metadata_rows_without_image': missing,
            'files_not_in_metadata': unlisted,
            'extra_copies_of_listed_images': extra_copies,
            'folders_disagreeing_with_metadata_dx': disagreements,
        })
    return {split: self._generate_examples(items, root)
            for split, items in splits.items()}

  def _generate_examples(self, items, root):
    yield from image_files.examples(items, root)


def _age(value: str) -> float:
  try:
    return float(value)
  except ValueError:
    return math.nan
