"""Loose photos named on a command line (predict, evaluate --ood_image_dir):
files, folders (searched recursively) and globs, each photo normalised by
the run's preparation Recipe, each one that cannot be used reported on
stderr and skipped. DICOM files (a .dcm suffix, or none and the DICM
preamble) are photos too, one per frame (skinjax.dicom)."""

import glob
import os
import sys

from skinjax import progress
from skinjax.data.prepare import decode
from skinjax.data.prepare import files
from skinjax.dicom import loading as dicom_loading
from skinjax.dicom import reading as dicom_reading

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                  '.webp')


def expand_paths(patterns) -> list:
  """Files named, found under folders, or matched by globs, in order, once."""
  paths = []
  for pattern in patterns:
    if os.path.isdir(pattern):
      paths += sorted(os.path.join(d, f) for d, _, names in os.walk(pattern)
                      for f in names if not f.startswith('.') and (
                          f.lower().endswith(IMAGE_SUFFIXES)
                          or dicom_reading.is_dicom_path(
                              os.path.join(d, f))))
    elif glob.has_magic(pattern):
      paths += sorted(p for p in glob.glob(pattern, recursive=True)
                      if os.path.isfile(p))
    else:
      paths.append(pattern)
  return list(dict.fromkeys(paths))


def load_images(paths, recipe, dicom_frames=None) -> tuple:
  """([(path, JPEG bytes)], [(path, reason)]): every file normalised by
  `recipe` (preparation.Recipe), one at a time, or the reason it could not
  be. A DICOM file gives one (path or `path#frameN`, JPEG) per frame, each
  also put in `dicom_frames` ({label: dicom.loading.Frame}) if given."""
  loaded, failed = [], []
  for path in progress.bar(paths, desc='reading photos', unit='photo'):
    try:
      if not dicom_reading.is_dicom_path(path):
        loaded.append((path, recipe.read(path)))
        continue
      for frame in dicom_loading.frames(files.FileRef(path).read(), path,
                                        recipe):
        loaded.append((frame.label, frame.jpeg))
        if dicom_frames is not None:
          dicom_frames[frame.label] = frame
    except (decode.BadImageError, files.FileTooLarge) as e:
      failed.append((path, str(e)))
    except OSError as e:
      failed.append((path, f'unreadable: {e.strerror or e}'))
  return loaded, failed


def load(patterns, recipe, dicom_frames=None) -> tuple:
  """(paths found, [(path, JPEG bytes)], [(path, reason)]) for the files,
  folders and globs in `patterns`; each skipped file reported on stderr.
  `dicom_frames` as load_images has it."""
  paths = expand_paths(patterns)
  loaded, failed = load_images(paths, recipe, dicom_frames)
  for path, reason in failed:
    print(f'skipped {path}: {reason}', file=sys.stderr)
  return paths, loaded, failed
