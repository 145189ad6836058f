"""Writes scikit-image's bundled photos of things that are not skin (a cat,
coffee, an astronaut, a rocket, textures, text, ...) into a folder, each
whole and as its four corner quarters and centre, for
`evaluate --ood_image_dir`.

  python experiments/safety/not_skin_photos.py OUT_DIR

Grey and binary images are written as grey-level RGB. Only images that ship
inside scikit-image are used (nothing is downloaded).
"""

import os
import sys

import numpy as np
from PIL import Image
from skimage import data

NAMES = ('astronaut', 'brick', 'camera', 'cat', 'chelsea', 'checkerboard',
         'clock', 'coffee', 'coins', 'colorwheel', 'grass', 'gravel', 'horse',
         'hubble_deep_field', 'immunohistochemistry', 'logo', 'moon', 'page',
         'rocket', 'text')


def _rgb(image) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype == bool:
    image = image.astype(np.uint8) * 255
  if image.ndim == 2:
    image = np.stack([image] * 3, axis=-1)
  return image[..., :3].astype(np.uint8)


def _views(image):
  """The whole image, its four quarters and its centre half."""
  h, w = image.shape[:2]
  yield 'whole', image
  for name, (y, x) in {'top_left': (0, 0), 'top_right': (0, w // 2),
                       'bottom_left': (h // 2, 0),
                       'bottom_right': (h // 2, w // 2),
                       'centre': (h // 4, w // 4)}.items():
    yield name, image[y:y + h // 2, x:x + w // 2]


def main(out_dir):
  os.makedirs(out_dir, exist_ok=True)
  count = 0
  for name in NAMES:
    for view, pixels in _views(_rgb(getattr(data, name)())):
      Image.fromarray(pixels).save(os.path.join(out_dir, f'{name}_{view}.png'))
      count += 1
  print(f'{count} photos of {len(NAMES)} scikit-image images in {out_dir}')


if __name__ == '__main__':
  main(sys.argv[1])
