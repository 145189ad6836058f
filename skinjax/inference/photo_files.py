"""Loose photos named on a command line (predict, evaluate --ood_image_dir):
files, folders (searched recursively) and globs, each photo normalised by
the run's preparation Recipe, each one that cannot be used reported on
stderr and skipped."""

import glob
import os
import sys

from skinjax import progress
from skinjax.data.prepare import decode
from skinjax.data.prepare import files

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                  '.webp')


def expand_paths(patterns) -> list:
  """Files named, found under folders, or matched by globs, in order, once."""
  paths = []
  for pattern in patterns:
    if os.path.isdir(pattern):
      paths += sorted(os.path.join(d, f) for d, _, names in os.walk(pattern)
                      for f in names if f.lower().endswith(IMAGE_SUFFIXES)
                      and not f.startswith('.'))
    elif glob.has_magic(pattern):
      paths += sorted(p for p in glob.glob(pattern, recursive=True)
                      if os.path.isfile(p))
    else:
      paths.append(pattern)
  return list(dict.fromkeys(paths))


def load_images(paths, recipe) -> tuple:
  """([(path, JPEG bytes)], [(path, reason)]): every file normalised by
  `recipe` (preparation.Recipe), one at a time, or the reason it could not
  be."""
  loaded, failed = [], []
  for path in progress.bar(paths, desc='reading photos', unit='photo'):
    try:
      loaded.append((path, recipe.read(path)))
    except (decode.BadImageError, files.FileTooLarge) as e:
      failed.append((path, str(e)))
    except OSError as e:
      failed.append((path, f'unreadable: {e.strerror or e}'))
  return loaded, failed


def load(patterns, recipe) -> tuple:
  """(paths found, [(path, JPEG bytes)], [(path, reason)]) for the files,
  folders and globs in `patterns`; each skipped file reported on stderr."""
  paths = expand_paths(patterns)
  loaded, failed = load_images(paths, recipe)
  for path, reason in failed:
    print(f'skipped {path}: {reason}', file=sys.stderr)
  return paths, loaded, failed
