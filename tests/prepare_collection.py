"""Prepares the image_folder collection `clinic` as a training start does
(data.load_builder) and prints its split sizes; the tests kill it midway
and run it again.

  python -m tests.prepare_collection DATA_DIR MANUAL_DIR
"""

import sys

from skinjax import data
from skinjax.config import defaults


def main(data_dir, manual_dir):
  config = defaults.get_config().dataset
  config.update(name='image_folder/clinic', data_dir=data_dir,
                manual_dir=manual_dir)
  builder = data.load_builder(config)
  print({s: builder.info.splits[s].num_examples for s in builder.info.splits},
        flush=True)


if __name__ == '__main__':
  main(*sys.argv[1:])
