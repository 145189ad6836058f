"""Photos scored without a dataset build: a class-per-folder tree for
`evaluate --image_dir`, or loose files, folders and globs for `predict`.

Each photo goes through the same preparation as a dataset build (EXIF
rotation, RGB, short side shrunk, JPEG), so a tree holding a prepared split's
original files scores exactly like that split.
"""

import glob
import json
import os

from skinjax.data.prepare import collection
from skinjax.data.prepare import decode
from skinjax.data.prepare import files

_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                   '.webp')


class PhotoFolderError(ValueError):
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


def load_tree(root: str, class_names, max_short_side: int, label_map=None, *,
              max_pixels: int) -> tuple:
  """(examples, report) for every image in root/<class folder>/...

  `examples` is a list of {'image': JPEG bytes, 'label', 'id'}, a random-
  access source for the evaluation pipeline. The report names unmatched
  folders, files outside any folder, and unreadable files (skipped).
  """
  try:
    listing = files.list_files(root)
  except files.CollectionError as e:
    raise PhotoFolderError(str(e)) from None
  by_folder = {}
  loose = []
  for file in listing.files:
    parts = files.relative_parts(file, root)
    if len(parts) < 2:
      loose.append(str(file))
    else:
      by_folder.setdefault(parts[0], []).append(file)
  matched, unmatched = match_folders(by_folder, class_names, label_map)
  candidates = [collection.Candidate(file, matched[folder], 'test')
                for folder in sorted(matched) for file in by_folder[folder]]
  if not candidates:
    raise PhotoFolderError(
        f'{root}: no folder matches a class of the model (folders: '
        f'{sorted(by_folder)}; classes: {list(class_names)})')
  prepared, skipped = collection.prepare_images(
      candidates, max_short_side, decode.JPEG_QUALITY, max_pixels=max_pixels)
  examples = [{'image': p.image, 'label': p.candidate.label,
               'id': '/'.join(files.relative_parts(p.candidate.file, root))}
              for p in prepared]
  report = {
      'image_dir': root,
      'folders': {f: class_names[i] for f, i in matched.items()},
      'unmatched_folders': {f: len(by_folder[f]) for f in unmatched},
      'files_outside_class_folders': loose,
      'skipped': listing.skipped + [{'file': f, 'reason': r}
                                    for f, r in skipped],
      'num_examples': len(examples),
  }
  return examples, report


def load_image(path: str, max_short_side: int, *, max_pixels: int) -> bytes:
  """One photo prepared like a dataset's; raises decode.BadImageError,
  files.FileTooLarge (or OSError) with the reason when it cannot be used."""
  image, _ = decode.normalise_image(files.FileRef(path).read(), max_short_side,
                                    decode.JPEG_QUALITY, max_pixels=max_pixels)
  return image


def expand_paths(patterns) -> list:
  """Files named, found under folders, or matched by globs, in order, once."""
  paths = []
  for pattern in patterns:
    if os.path.isdir(pattern):
      paths += sorted(os.path.join(d, f) for d, _, names in os.walk(pattern)
                      for f in names if f.lower().endswith(_IMAGE_SUFFIXES)
                      and not f.startswith('.'))
    elif glob.has_magic(pattern):
      paths += sorted(p for p in glob.glob(pattern, recursive=True)
                      if os.path.isfile(p))
    else:
      paths.append(pattern)
  return list(dict.fromkeys(paths))


def load_images(paths, max_short_side: int, *, max_pixels: int) -> tuple:
  """([(path, JPEG bytes)], [(path, reason)]): every file prepared like a
  dataset photo, one at a time, or the reason it could not be."""
  loaded, failed = [], []
  for path in paths:
    try:
      loaded.append((path, load_image(path, max_short_side,
                                      max_pixels=max_pixels)))
    except (decode.BadImageError, files.FileTooLarge) as e:
      failed.append((path, str(e)))
    except OSError as e:
      failed.append((path, f'unreadable: {e.strerror or e}'))
  return loaded, failed
