"""A DICOM file made into the normalised photos of its frames, as
preparation.Recipe makes a photo file into one: predict and
`evaluate --image_dir` read DICOM through here, beside their photos."""

import dataclasses

from skinjax.dicom import reading


@dataclasses.dataclass(frozen=True)
class Frame:
  """One frame of an instance, normalised: `label` names it in results
  (the file, then `#frameN` for an instance of several frames)."""
  label: str
  jpeg: bytes
  instance: reading.Instance
  number: int  # 1-based

  @property
  def reference(self) -> dict:
    return self.instance.reference(self.number)


def label(name: str, instance: reading.Instance, frame: int) -> str:
  """How a frame is named in results: `name`, or `name#frameN`."""
  return name if instance.frames == 1 else f'{name}#frame{frame}'


def frames(data: bytes, name: str, recipe) -> list:
  """[Frame] of the instance in `data`, each frame normalised by `recipe`
  (preparation.Recipe); raises reading.DicomRefused (a
  decode.BadImageError) with the reason."""
  instance = reading.parse(data, recipe.max_image_pixels)
  return [Frame(label(name, instance, n),
                recipe.normalise(reading.frame_photo(instance, n)), instance,
                n) for n in range(1, instance.frames + 1)]
