r"""Where a served photo's time goes, in this process: preparing an upload
(device.prepare_photo: decode, EXIF, RGB, shrink, JPEG, centre crop, skin
tone, quality gate) per photo on one thread, and the device's predict function per batch
shape.

  python experiments/serving/stages.py --workdir RUN [--batch_sizes 1,4,32]
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import flags  # after sys.path
import load_test
from skinjax.inference import preparation
from skinjax.inference import restore
from skinjax.inference import skin_tone
from skinjax.run_folder import run_config
from skinjax.service import device


def _milliseconds(function, repeats: int) -> float:
  function()  # compiles, warms caches
  start = time.perf_counter()
  for _ in range(repeats):
    function()
  return round((time.perf_counter() - start) / repeats * 1000, 2)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--batch_sizes', default='1,4,32')
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  config = run_config.read(args.workdir)
  photos = load_test.generated_photos(16)
  recipe = preparation.Recipe.from_config(config)
  region = skin_tone.region_for(config.dataset.name)
  scorer = restore.load(config, args.workdir, 'best')
  gate = scorer.quality_gate(config)
  prepare_ms = _milliseconds(
      lambda: [device.prepare_photo(data, recipe, region, gate)
               for _, data in photos],
      args.repeats) / len(photos)
  predict = device.device_functions(scorer)['predict']
  size = config.image_size
  predict_ms = {
      n: _milliseconds(lambda n=n: predict(np.zeros((n, size, size, 3),
                                                    np.uint8)), args.repeats)
      for n in map(int, args.batch_sizes.split(','))}
  print(json.dumps({'model': config.model.name, 'image_size': size,
                    'prepare_ms_per_photo': round(prepare_ms, 2),
                    'photo_size': [800, 600],
                    'predict_ms_per_batch': predict_ms}, indent=2))


if __name__ == '__main__':
  main()
