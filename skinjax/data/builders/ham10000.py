"""ham10000: dermoscopy images of pigmented lesions, 7 diagnoses.

Prepared from files the user downloaded (Harvard Dataverse or Kaggle):
`HAM10000_metadata.csv` plus the images, either in the original layout
(`HAM10000_images_part_1/`, `HAM10000_images_part_2/`, or their zips) or in
a class-per-folder copy (`<dx>/<image_id>.jpg`). Labels come from the CSV.
Several images show the same lesion, so train/validation/test are split by
a stable hash of `lesion_id` (skinjax.data.prepare.splits): no lesion crosses
splits or moves when others are added. Age, sex and body site are kept as
features.
"""

import csv
import io
import math
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from skinjax.data.builders import prepared_photos
from skinjax.data.prepare import collection
from skinjax.data.prepare import files

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
# Every column is stored with the example (`age` as a float, NaN if empty).
_COLUMNS = ('lesion_id', 'image_id', 'dx', 'dx_type', 'age', 'sex',
            'localization')


class Ham10000(prepared_photos.PreparedPhotosBuilder):
  """HAM10000 dermoscopy, split by lesion."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '2.0.0': prepared_photos.STABLE_SPLITS,
  }
  BUILDER_CONFIGS = [prepared_photos.PreparedPhotosConfig(
      name='default', validation_fraction=0.1, test_fraction=0.2)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  HAM10000_metadata.csv and the HAM10000 images (folders or zips).
  Download from https://doi.org/10.7910/DVN/DBW86T and set
  dataset.manual_dir to the folder that holds them.
  """
  HOMEPAGE = 'https://doi.org/10.7910/DVN/DBW86T'

  def _class_names(self):
    return [code for code, _ in DIAGNOSES]

  def _extra_features(self):
    return {
        'image_id': tfds.features.Text(),
        'lesion_id': tfds.features.Text(),
        'dx_type': tfds.features.Text(),
        'age': tfds.features.Scalar(np.float32),  # NaN when unknown
        'sex': tfds.features.Text(),
        'localization': tfds.features.Text(),
    }

  def _metadata(self):
    return {'diagnoses': dict(DIAGNOSES)}

  def _find_candidates(self, root, found):
    csv_files = [f for f in found if str(f).endswith(METADATA_FILE)]
    rows = _read_metadata(csv_files, root)
    by_image = {}
    for file in found:
      stem = pathlib.PurePosixPath(str(file)).stem
      by_image.setdefault(stem, []).append(file)
    label_of = {code: i for i, (code, _) in enumerate(DIAGNOSES)}
    candidates, missing, disagreements, extra_copies = [], [], 0, 0
    unknown_dx = [{'image_id': row['image_id'], 'dx': row['dx']}
                  for row in rows if row['dx'] not in label_of]
    for row in rows:
      if row['dx'] not in label_of:
        continue
      images = [f for f in by_image.get(row['image_id'], [])
                if f not in csv_files]
      if not images:
        missing.append(row['image_id'])
        continue
      extra_copies += len(images) - 1
      folder = files.relative_parts(images[0], root)[-2:-1]
      disagreements += bool(folder and folder[0] in label_of
                            and folder[0] != row['dx'])
      candidates.append(collection.Candidate(
          images[0], label_of[row['dx']], 'train', group=row['lesion_id'],
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
    carve = {'test': config.test_fraction,
             'validation': config.validation_fraction}
    notes = {
        'metadata_rows': len(rows),
        'metadata_rows_without_image': missing,
        'metadata_rows_with_unknown_dx_skipped': unknown_dx,
        'files_not_in_metadata': unlisted,
        'extra_copies_of_listed_images': extra_copies,
        'folders_disagreeing_with_metadata_dx': disagreements,
    }
    return candidates, carve, notes


def _read_metadata(csv_files, root: str) -> list:
  """The rows of the one metadata CSV, read as UTF-8 with or without the
  byte-order mark a spreadsheet writes; CollectionError naming the file if
  there is none, several, or one without the columns."""
  if not csv_files:
    raise files.CollectionError(f'{METADATA_FILE} not found under {root}')
  if len(csv_files) > 1:
    raise files.CollectionError(
        f'{len(csv_files)} files named {METADATA_FILE} under {root} '
        f'({", ".join(map(str, csv_files))}): keep the one to use')
  file = csv_files[0]
  try:
    text = file.read().decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise files.CollectionError(
        f'{file}: not UTF-8 text ({e.reason} at byte {e.start})') from None
  except files.FileTooLarge as e:
    raise files.CollectionError(f'{file}: {e}') from None
  reader = csv.DictReader(io.StringIO(text))
  missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
  if missing:
    raise files.CollectionError(f'{file}: no column {", ".join(missing)}'
                                     f' (columns: {reader.fieldnames})')
  return list(reader)


def _age(value: str) -> float:
  try:
    return float(value)
  except ValueError:
    return math.nan
