"""The parent run's own photos, where its dataset is prepared here: a
class-balanced sample of its training photos to replay beside the new ones,
so fitting the head does not forget the old classes, and its validation
split, for the head's epoch and the calibration.

Nothing is prepared or downloaded: a run copied without its dataset extends
from the new photos alone, and says so.
"""

import dataclasses

import numpy as np

from skinjax import data
from skinjax import errors
from skinjax.data import pipeline


@dataclasses.dataclass(frozen=True)
class OldPhotos:
  replay: list  # the sampled training records ({'image', 'label', ...})
  validation: object  # random-access validation split, or None
  note: str  # one line: what was found


def find(config, class_names, per_class: int, seed: int) -> OldPhotos:
  """`per_class` training photos of each of `class_names` (all of a class
  that has fewer), drawn by `seed`, and the validation split of the run's
  dataset; none of either where it is not prepared here or is not the
  run's (its classes differ)."""
  name = config.dataset.name
  try:
    builder = data.get_builder(config.dataset)
    prepared = builder.is_prepared()
  except (errors.UserError, OSError) as e:
    return OldPhotos([], None, f'the run\'s dataset {name} cannot be opened '
                     f'({e}): no old photos replayed or validated on')
  if not prepared:
    return OldPhotos([], None, f'the run\'s dataset {name} is not prepared in '
                     f'{config.dataset.data_dir} (set --config.dataset.'
                     'data_dir): no old photos replayed or validated on')
  held_out = config.dataset.held_out_classes
  if pipeline.class_names(builder, held_out) != list(class_names):
    return OldPhotos([], None, f'{name} in {config.dataset.data_dir} does not '
                     'have the run\'s classes: no old photos replayed or '
                     'validated on')
  validation = pipeline.data_source(builder, config.dataset.eval_split,
                                    held_out)
  replay = []
  if per_class:
    source = pipeline.data_source(builder, config.dataset.train_split,
                                  held_out)
    labels = pipeline.read_labels(source)
    rng = np.random.default_rng(seed)
    for label in range(len(class_names)):
      members = np.flatnonzero(labels == label)
      chosen = rng.choice(members, min(per_class, len(members)),
                          replace=False)
      replay += [source[int(i)] for i in np.sort(chosen)]
  replayed = (f'{len(replay)} of {name}\'s training photos replayed (up to '
              f'{per_class} per class)' if per_class else
              f'none of {name}\'s training photos replayed')
  return OldPhotos(replay, validation, (
      f'{replayed}, its {len(validation)} {config.dataset.eval_split} photos '
      'validated on'))
