"""The ITA estimate against the skin tone the synthetic dataset draws.

  python experiments/safety/ita_synthetic.py [NUM_PHOTOS] [SIZE]

Draws NUM_PHOTOS (600) synthetic photos of SIZE (64) px as the test split
of synthetic_lesions draws them, estimates each one's ITA and prints the
Pearson correlation with the ITA of the drawn tone, the mean difference and
how often both fall in the same group.
"""

import sys

import numpy as np

from skinjax.data.builders import lesion_drawing
from skinjax.inference import skin_tone


def main(num_photos=600, size=64):
  estimated, drawn = [], []
  for i in range(num_photos):
    image, tone = lesion_drawing.draw(np.random.default_rng([0, 2, i]),
                                      i % len(lesion_drawing.CLASS_NAMES),
                                      size)
    estimate = skin_tone.estimate(image)['ita']
    estimated.append(np.nan if estimate is None else estimate)
    drawn.append(skin_tone.ita_of_rgb(tone))
  agreement = skin_tone.agreement(estimated, drawn)
  print(f'{num_photos} photos at {size} px: tone unknown for '
        f'{int(np.isnan(estimated).sum())}; Pearson r '
        f"{agreement['pearson_r']:.3f}; mean difference "
        f"{agreement['mean_difference']:+.1f} degrees; same group "
        f"{agreement['group_agreement']:.2f}")


if __name__ == '__main__':
  main(*[int(a) for a in sys.argv[1:]])
