"""Peak memory of preparing a photo collection, or of loading photos as
`predict` does, in this process and its worker processes.

  python -m tests.peak_memory prepare MANUAL_DIR DATA_DIR
  python -m tests.peak_memory predict PATH...

Prints one JSON object: the peak RSS in MiB of this process and of its
largest worker (workers that have ended: RUSAGE_CHILDREN), the number of
workers, and what was prepared or loaded. RSS, not address space: jax
reserves far more address space than it uses.
"""

import json
import os
import resource
import sys

from skinjax import data
from skinjax.bench import hardware
from skinjax.config import defaults
from skinjax.data.prepare import collection
from skinjax.inference import photo_files
from skinjax.inference import preparation


def prepare(manual_dir, data_dir) -> dict:
  """An image_folder collection prepared with the default settings."""
  config = defaults.get_config().dataset
  config.name = 'image_folder/' + os.path.basename(manual_dir.rstrip('/'))
  config.manual_dir, config.data_dir = manual_dir, data_dir
  builder = data.get_builder(config)
  data.prepare(builder, manual_dir)
  return {'report': os.path.join(builder.data_dir, collection.REPORT_FILE)}


def predict(*patterns) -> dict:
  """The photos named, loaded with the default settings as predict loads
  them."""
  loaded, failed = photo_files.load_images(
      photo_files.expand_paths(patterns),
      preparation.Recipe.from_config(defaults.get_config()))
  return {'loaded': [path for path, _ in loaded], 'failed': dict(failed)}


def main(command, *args):
  found = {'prepare': prepare, 'predict': predict}[command](*args)
  peak = lambda who: round(resource.getrusage(who).ru_maxrss / 1024)
  own_peak, _ = hardware.peak_rss(was_reset=False)
  print(json.dumps({
      'peak_rss_mib': round(own_peak / 2**20),
      'largest_worker_peak_rss_mib': peak(resource.RUSAGE_CHILDREN),
      'workers': collection.worker_count() if command == 'prepare' else 0,
      **found}))


if __name__ == '__main__':
  main(*sys.argv[1:])
