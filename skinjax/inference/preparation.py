"""How a photo is prepared for scoring, composed once: predict, the service,
`evaluate --image_dir` and the export's own `prepare` all go through Recipe.

A photo is first normalised as a dataset build stores it (only photo
formats, the pixel count refused from the header, EXIF rotation, RGB, short
side shrunk, JPEG), then the model's input is the central square of
`crop_fraction` of its short side resized to `image_size`, the crop that
validation takes of a dataset's photos (data.preprocess.eval_crop).
"""

import dataclasses

import numpy as np

from skinjax.data import preprocess
from skinjax.data.prepare import decode
from skinjax.data.prepare import files


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The values that decide what the model sees of a photo."""
  max_short_side: int
  jpeg_quality: int
  max_image_pixels: int
  image_size: int
  crop_fraction: float

  @classmethod
  def from_config(cls, config) -> 'Recipe':
    """The recipe of a run's config (evaluation-time changes included)."""
    return cls(max_short_side=config.dataset.max_short_side,
               jpeg_quality=decode.JPEG_QUALITY,
               max_image_pixels=config.dataset.max_image_pixels,
               image_size=config.eval_image_size or config.image_size,
               crop_fraction=config.augment.eval_crop_fraction)

  def normalise(self, data: bytes) -> bytes:
    """The photo's bytes as a dataset build stores them (JPEG); raises
    decode.BadImageError with the reason."""
    jpeg, _ = decode.normalise_image(data, self.max_short_side,
                                     self.jpeg_quality,
                                     max_pixels=self.max_image_pixels)
    return jpeg

  def read(self, path: str) -> bytes:
    """The file at `path`, normalised; raises decode.BadImageError,
    files.FileTooLarge or OSError with the reason."""
    return self.normalise(files.FileRef(path).read())

  def model_input(self, jpeg: bytes) -> np.ndarray:
    """A normalised photo as the model takes it: uint8 [size, size, 3]."""
    return preprocess.eval_crop(jpeg, self.image_size, self.crop_fraction)
