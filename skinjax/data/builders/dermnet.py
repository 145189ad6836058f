"""dermnet: clinical photos in the DermNet "23 categories" taxonomy.

Prepared from the public Kaggle DermNet archive (about 19,500 photos in
`train/` and `test/`, one folder per category) that the user downloaded:
point `dataset.manual_dir` at the zip or at the extracted folder. Two
configs: `dermnet/23` (every category) and `dermnet/20` (the 20 classes of
the original project: the 23 without hair loss, nail and scabies/Lyme).
Categories absent from the files are reported, not fatal. The validation
split is carved from `train` by a stable hash of each photo's bytes
(skinjax.data.prepare.splits): adding photos moves no other photo.
"""

import tensorflow_datasets as tfds

from skinjax.data.builders import prepared_photos
from skinjax.data.prepare import collection
from skinjax.data.prepare import files

# (short canonical name, folder name in the Kaggle archive), in label order.
CATEGORIES = (
    ('acne_rosacea', 'Acne and Rosacea Photos'),
    ('actinic_keratosis_carcinoma',
     'Actinic Keratosis Basal Cell Carcinoma and other Malignant Lesions'),
    ('atopic_dermatitis', 'Atopic Dermatitis Photos'),
    ('bullous_disease', 'Bullous Disease Photos'),
    ('cellulitis_bacterial', 'Cellulitis Impetigo and other Bacterial Infections'),
    ('eczema', 'Eczema Photos'),
    ('exanthems_drug_eruptions', 'Exanthems and Drug Eruptions'),
    ('hair_loss', 'Hair Loss Photos Alopecia and other Hair Diseases'),
    ('herpes_hpv_std', 'Herpes HPV and other STDs Photos'),
    ('light_pigmentation_disorders',
     'Light Diseases and Disorders of Pigmentation'),
    ('lupus_connective_tissue', 'Lupus and other Connective Tissue diseases'),
    ('melanoma_nevi_moles', 'Melanoma Skin Cancer Nevi and Moles'),
    ('nail_disease', 'Nail Fungus and other Nail Disease'),
    ('poison_ivy_contact_dermatitis',
     'Poison Ivy Photos and other Contact Dermatitis'),
    ('psoriasis_lichen_planus',
     'Psoriasis pictures Lichen Planus and related diseases'),
    ('scabies_lyme_bites', 'Scabies Lyme Disease and other Infestations and Bites'),
    ('seborrheic_keratoses_benign_tumors',
     'Seborrheic Keratoses and other Benign Tumors'),
    ('systemic_disease', 'Systemic Disease'),
    ('tinea_fungal', 'Tinea Ringworm Candidiasis and other Fungal Infections'),
    ('urticaria_hives', 'Urticaria Hives'),
    ('vascular_tumors', 'Vascular Tumors'),
    ('vasculitis', 'Vasculitis Photos'),
    ('warts_molluscum_viral', 'Warts Molluscum and other Viral Infections'),
)
_NOT_IN_20 = ('hair_loss', 'nail_disease', 'scabies_lyme_bites')


class Dermnet(prepared_photos.PreparedPhotosBuilder):
  """DermNet clinical photographs, 23 or 20 categories."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '2.0.0': prepared_photos.STABLE_SPLITS,
  }
  BUILDER_CONFIGS = [
      prepared_photos.PreparedPhotosConfig(
          name='23', description='All 23 categories.'),
      prepared_photos.PreparedPhotosConfig(
          name='20', description='Without hair loss, nail disease and '
          'scabies/Lyme.'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  the Kaggle DermNet archive (zip, or extracted with train/ and test/ folders).
  Download it from https://www.kaggle.com/datasets/shubhamgoel27/dermnet and
  set dataset.manual_dir to the zip or the folder.
  """
  HOMEPAGE = 'https://dermnetnz.org'

  def _categories(self):
    base = self.builder_config.name.split('-')[0]
    return tuple(c for c in CATEGORIES
                 if base == '23' or c[0] not in _NOT_IN_20)

  def _class_names(self):
    return [name for name, _ in self._categories()]

  def _metadata(self):
    return {'folder_names': dict(self._categories())}

  def _find_candidates(self, root, found):
    label_of_folder = {folder.lower(): i
                       for i, (_, folder) in enumerate(self._categories())}
    excluded = {folder.lower() for name, folder in CATEGORIES
                if name not in self._class_names()}
    candidates, unmatched, excluded_files = [], set(), 0
    for file in found:
      located = _locate(files.relative_parts(file, root))
      if located is None:
        continue  # not under train/ or test/ (e.g. a README)
      split, folder = located
      if folder.lower() in label_of_folder:
        candidates.append(collection.Candidate(
            file, label_of_folder[folder.lower()], split))
      elif folder.lower() in excluded:
        excluded_files += 1
      else:
        unmatched.add(folder)
    present = {self._categories()[c.label][1] for c in candidates}
    notes = {
        'category_folders_missing': sorted(
            f for _, f in self._categories() if f not in present),
        'unknown_folders_ignored': sorted(unmatched),
        'files_in_categories_not_in_this_config': excluded_files,
    }
    return (candidates, {'validation': self.builder_config.validation_fraction},
            notes)


def _locate(parts):
  """('train' | 'test', category folder) from a path like .../test/Eczema/x.jpg."""
  for i in range(len(parts) - 2):
    if parts[i].lower() in ('train', 'test'):
      return parts[i].lower(), parts[i + 1]
  return None
