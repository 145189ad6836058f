"""Photos scored without a dataset build: a class-per-folder tree for
`evaluate --image_dir`.

Each photo goes through the same preparation as a dataset build (EXIF
rotation, RGB, short side shrunk, JPEG), so a tree holding a prepared split's
original files scores exactly like that split. A DICOM file (a .dcm suffix,
or none and the DICM preamble) gives one example per frame, its id
`path#frameN` for an instance of several (skinjax.dicom).
"""

import json

from skinjax import errors
from skinjax.data.prepare import collection
from skinjax.data.prepare import files
from skinjax.dicom import loading as dicom_loading
from skinjax.dicom import reading as dicom_reading


class PhotoFolderError(errors.UserError):
  """Photos that cannot be scored as asked; the message names the file."""


def read_label_map(path: str) -> dict:
  """{folder name: class name} from a JSON file; one-line error if malformed."""
  try:
    with open(path) as f:
      label_map = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise PhotoFolderError(f'label map {path}: {e}') from None
  if not isinstance(label_map, dict) or not all(
      isinstance(v, str) for v in label_map.values()):
    raise PhotoFolderError(f'label map {path}: expected a JSON object of '
                           '{"folder name": "class name"}')
  return label_map


def match_folders(folders, class_names, label_map=None) -> tuple:
  """({folder: class index}, [unmatched folders]).

  A folder matches a class by name ignoring case, or through `label_map`,
  whose keys also ignore case and whose values must be class names.
  """
  index = {name.casefold(): i for i, name in enumerate(class_names)}
  mapped = {}
  for folder, name in (label_map or {}).items():
    if name.casefold() not in index:
      raise PhotoFolderError(
          f'label map: {folder!r} -> {name!r}, which is not a class of the '
          f'model; classes: {list(class_names)}')
    mapped[folder.casefold()] = index[name.casefold()]
  matched, unmatched = {}, []
  for folder in sorted(folders):
    key = folder.casefold()
    if key in mapped or key in index:
      matched[folder] = mapped.get(key, index.get(key))
    else:
      unmatched.append(folder)
  return matched, unmatched


def list_tree(root: str) -> tuple:
  """({top folder: [files.FileRef]}, [files outside any folder], [{'file',
  'reason'} the listing passed over]) of the files under `root`, looking
  inside zips, as a dataset preparation lists them."""
  try:
    listing = files.list_files(root)
  except files.CollectionError as e:
    raise PhotoFolderError(str(e)) from None
  by_folder, loose = {}, []
  for file in listing.files:
    parts = files.relative_parts(file, root)
    if len(parts) < 2:
      loose.append(str(file))
    else:
      by_folder.setdefault(parts[0], []).append(file)
  return by_folder, loose, listing.skipped


def _is_dicom(file: files.FileRef) -> bool:
  """DICOM by its name, or, without a suffix, by its preamble."""
  def head():
    try:
      return file.read()[:dicom_reading.MAGIC_OFFSET + 4]
    except (files.FileTooLarge, OSError):
      return b''  # read again, and reported, as a photo
  return dicom_reading.is_dicom_name(file.member or file.path, head)


def load_tree(root: str, class_names, recipe, label_map=None) -> tuple:
  """(examples, report) for every image in root/<class folder>/..., each
  normalised as `recipe` (inference.preparation.Recipe) says.

  `examples` is a list of {'image': JPEG bytes, 'label', 'id'}, a random-
  access source for the evaluation pipeline. The report names unmatched
  folders, files outside any folder, and unreadable files (skipped).
  """
  by_folder, loose, listing_skipped = list_tree(root)
  matched, unmatched = match_folders(by_folder, class_names, label_map)
  candidates = [collection.Candidate(file, matched[folder], 'test')
                for folder in sorted(matched) for file in by_folder[folder]]
  if not candidates:
    raise PhotoFolderError(
        f'{root}: no folder matches a class of the model (folders: '
        f'{sorted(by_folder)}; classes: {list(class_names)})')
  kinds = [_is_dicom(c.file) for c in candidates]
  dicom = [c for c, is_dicom in zip(candidates, kinds) if is_dicom]
  photos = [c for c, is_dicom in zip(candidates, kinds) if not is_dicom]
  prepared, skipped = collection.prepare_images(
      photos, recipe.max_short_side, recipe.jpeg_quality,
      max_pixels=recipe.max_image_pixels) if photos else ([], [])
  examples = [{'image': p.image, 'label': p.candidate.label,
               'id': '/'.join(files.relative_parts(p.candidate.file, root))}
              for p in prepared]
  for candidate in dicom:
    name = '/'.join(files.relative_parts(candidate.file, root))
    try:
      frames = dicom_loading.frames(candidate.file.read(), name, recipe)
    except (dicom_reading.DicomRefused, files.FileTooLarge, OSError) as e:
      skipped.append((str(candidate.file), str(e)))
      continue
    examples += [{'image': f.jpeg, 'label': candidate.label, 'id': f.label}
                 for f in frames]
  report = {
      'image_dir': root,
      'folders': {f: class_names[i] for f, i in matched.items()},
      'unmatched_folders': {f: len(by_folder[f]) for f in unmatched},
      'files_outside_class_folders': loose,
      'skipped': listing_skipped + [{'file': f, 'reason': r}
                                    for f, r in skipped],
      'num_examples': len(examples),
  }
  return examples, report
