"""Loose photos named on the command line (predict, evaluate --ood_image_dir):
loaded like a dataset's, each one that cannot be used reported on stderr."""

import sys

from skinjax.data.prepare import scoring_photos


def load(patterns, dataset_config) -> tuple:
  """(paths found, [(path, JPEG bytes)], [(path, reason)]) for the files,
  folders and globs in `patterns`."""
  paths = scoring_photos.expand_paths(patterns)
  loaded, failed = scoring_photos.load_images(
      paths, dataset_config.max_short_side,
      max_pixels=dataset_config.max_image_pixels)
  for path, reason in failed:
    print(f'skipped {path}: {reason}', file=sys.stderr)
  return paths, loaded, failed
