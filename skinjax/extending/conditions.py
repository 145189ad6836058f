"""The new conditions' photos: NEW_CONDITIONS/<condition>/... read as
`evaluate --image_dir` reads a class-per-folder tree (the same listing,
zips included, and the same preparation as a dataset build), checked, and
carved into training and validation photos.

Each condition must have at least two usable photos (one to fit on, one to
validate and calibrate on) and a name the run does not already have. The
validation photos are drawn per condition from the photos ordered by their
content, so the same files in any order or place give the same carve.
"""

import dataclasses
import os
import sys

import numpy as np

from skinjax import errors
from skinjax.data.prepare import collection
from skinjax.data.prepare import files
from skinjax.evaluation import image_dir


class ConditionsError(errors.UserError):
  """A new-conditions folder that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class NewPhotos:
  """Examples are {'image': JPEG bytes, 'label': index in `names`,
  'sha256': of the file, 'id': its path under the root}."""
  names: list  # the new conditions, in label order
  train: list
  validation: list
  skipped: list  # [(file, reason)]


def read(root: str, old_names, recipe, validation_fraction: float,
         seed: int) -> NewPhotos:
  """The photos of every condition folder under `root`, normalised by
  `recipe` (inference.preparation.Recipe); unusable files are counted on
  one line of stderr and skipped; ConditionsError for a folder that cannot
  be a new condition."""
  if not os.path.isdir(root):
    raise ConditionsError(f'--image_dir={root}: not a folder')
  by_folder, loose, listing_skipped = image_dir.list_tree(root)
  names = sorted(set(by_folder) | {
      entry.name for entry in os.scandir(root)
      if entry.is_dir() and not entry.name.startswith('.')})
  if not names:
    raise ConditionsError(f'{root}: no condition folders; put each new '
                          'condition\'s photos in a folder named as the class')
  _check_names(root, names, old_names)
  candidates = [collection.Candidate(file, label, 'train')
                for label, name in enumerate(names)
                for file in by_folder.get(name, [])]
  prepared, skipped = collection.prepare_images(
      candidates, recipe.max_short_side, recipe.jpeg_quality,
      max_pixels=recipe.max_image_pixels) if candidates else ([], [])
  skipped = ([(s['file'], s['reason']) for s in listing_skipped] + skipped +
             [(f, 'not in a condition folder') for f in loose])
  examples = _unique(root, prepared, skipped)
  _report_skipped(root, skipped, len(candidates) + len(loose))
  for label, name in enumerate(names):
    count = sum(e['label'] == label for e in examples)
    if count < 2:
      raise ConditionsError(
          f'{os.path.join(root, name)}: {count} usable photo'
          f'{"" if count == 1 else "s"}; a new condition needs at least 2 '
          '(one to fit on, one to validate on)')
  train, validation = carve(examples, len(names), validation_fraction, seed)
  return NewPhotos(names, train, validation, skipped)


def _check_names(root: str, names, old_names) -> None:
  """Folder names are class names: none the run has (ignoring case, as
  --image_dir matches them), none twice."""
  known = {n.casefold(): n for n in old_names}
  seen = {}
  for name in names:
    if name.casefold() in known:
      raise ConditionsError(
          f'{os.path.join(root, name)}: {known[name.casefold()]!r} is already '
          'a class of the run; a new condition needs a new name')
    if name.casefold() in seen:
      raise ConditionsError(f'{os.path.join(root, name)}: the same name as '
                            f'{seen[name.casefold()]!r} but for case')
    seen[name.casefold()] = name


def _unique(root: str, prepared, skipped: list) -> list:
  """The examples, each file's content once: a copy in the same condition is
  skipped (it would count twice, or sit in both training and validation),
  one in another condition is refused."""
  examples, first = [], {}
  for item in prepared:
    name = '/'.join(files.relative_parts(item.candidate.file, root))
    label = item.candidate.label
    if item.file_digest in first:
      other, other_label = first[item.file_digest]
      if other_label != label:
        raise ConditionsError(f'{os.path.join(root, name)}: the same photo as '
                              f'{os.path.join(root, other)}, in two conditions')
      skipped.append((os.path.join(root, name), f'a copy of {other}'))
      continue
    first[item.file_digest] = (name, label)
    examples.append({'image': item.image, 'label': label,
                     'sha256': item.file_digest, 'id': name})
  return examples


def _report_skipped(root: str, skipped, total: int) -> None:
  if skipped:
    shown = '; '.join(f'{file}: {reason}' for file, reason in skipped[:3])
    print(f'skipped {len(skipped)} of {total} files under {root} ({shown}'
          f'{"; ..." if len(skipped) > 3 else ""})', file=sys.stderr,
          flush=True)


def carve(examples, num_classes: int, fraction: float, seed: int) -> tuple:
  """(train, validation): of each class's n photos, max(1, round(fraction
  n)) but never all for validation, drawn by `seed` from the photos in
  content order."""
  train, validation = [], []
  for label in range(num_classes):
    members = sorted((e for e in examples if e['label'] == label),
                     key=lambda e: e['sha256'])
    count = min(max(1, round(fraction * len(members))), len(members) - 1)
    order = np.random.default_rng([seed, label]).permutation(len(members))
    validation += [members[i] for i in sorted(order[:count])]
    train += [members[i] for i in sorted(order[count:])]
  return train, validation
