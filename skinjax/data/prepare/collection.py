"""Preparing real photo collections: decode once, clean, shrink, deduplicate, split.

The builders of real datasets (dermnet, ham10000, image_folder: see
skinjax.data.builders.prepared_photos) find their files and labels, then hand
them to `prepare_splits`, which

  * decodes every file once, in parallel processes, as decode.py says
    (EXIF-rotated, 8-bit RGB, short side shrunk) and stores it as JPEG, so
    training decodes small files fast;
  * skips corrupt, truncated, empty and non-image files, counting and listing
    them, instead of failing;
  * finds exact duplicates (duplicates.py: same decoded pixels), keeps a
    duplicate out of the training split when a copy is in a held-out split,
    and keeps duplicates together when carving new splits;
  * carves validation/test splits (splits.py) by a keyed hash of each
    group (a lesion, a set of duplicates, else the file's bytes), so a
    photo's split never moves when others are added or removed, no group
    crosses splits, and classes are stratified within binomial spread;
  * writes `prepare_report.json` beside the prepared files and records class
    counts in the dataset info.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import zipfile

from skinjax import progress
from skinjax.data.prepare import decode
from skinjax.data.prepare import duplicates
from skinjax.data.prepare import files
from skinjax.data.prepare import splits

REPORT_FILE = 'prepare_report.json'


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A file a builder wants as an example."""
  file: files.FileRef
  label: int
  split: str  # the split the layout puts it in ('train' if it says nothing)
  group: str = ''  # examples of one group never cross splits; '' = the file
  features: tuple = ()  # extra (name, value) pairs stored with the example


@dataclasses.dataclass(frozen=True)
class Prepared:
  candidate: Candidate
  image: bytes  # JPEG
  pixel_digest: str
  file_digest: str  # tells byte-identical copies from re-encodes

  @property
  def group_key(self) -> str:
    """What decides the split: the group, else the file's bytes (not its
    name or folder, so a moved, renamed or relabelled photo keeps its
    split, and so do the photos of a zip and of its extracted folder)."""
    return self.candidate.group or self.file_digest


def _prepare_one(job):
  candidate, max_short_side, quality, max_pixels = job
  try:
    data = candidate.file.read()
    image, pixel_digest = decode.normalise_image(
        data, max_short_side, quality, max_pixels=max_pixels)
  except (decode.BadImageError, files.FileTooLarge) as e:
    return candidate, str(e)
  except (OSError, zipfile.BadZipFile) as e:
    return candidate, f'unreadable: {e}'
  return Prepared(candidate, image, pixel_digest,
                  hashlib.sha256(data).hexdigest())


def worker_count() -> int:
  """Decoding processes: one per core, at most 16."""
  return max(1, min(len(os.sched_getaffinity(0)), 16))


def prepare_images(candidates, max_short_side: int, quality: int, *,
                   max_pixels: int):
  """Decodes and re-encodes every candidate in parallel processes, each
  holding one photo at a time (see decode.py for what one costs).

  Returns (prepared, skipped) where skipped is a list of (file, reason).
  """
  jobs = [(c, max_short_side, quality, max_pixels) for c in candidates]
  prepared, skipped = [], []
  with concurrent.futures.ProcessPoolExecutor(
      worker_count(), mp_context=multiprocessing.get_context('spawn')) as pool:
    for result in progress.bar(pool.map(_prepare_one, jobs, chunksize=32),
                               total=len(jobs), desc='decoding photos',
                               unit='photo'):
      if isinstance(result, Prepared):
        prepared.append(result)
      else:
        skipped.append((str(result[0].file), result[1]))
  return prepared, skipped


def prepare_splits(builder, candidates, *, root: str, carve: dict,
                   notes: dict) -> dict:
  """Everything between found files and the examples of each split: see the
  module doc. Returns {split: [Prepared]}; pass each to `examples`.

  `carve` maps new split names to fractions taken from 'train'; `notes` are
  builder findings (missing classes, unmatched files) added to the report.
  """
  if not candidates:
    raise files.CollectionError(
        f'No images found for {builder.name} under {root}: expected '
        f'{builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip().splitlines()[0]}')
  config = builder.builder_config
  class_names = builder.info.features['label'].names
  prepared, skipped = prepare_images(candidates, config.max_short_side,
                                     config.jpeg_quality,
                                     max_pixels=config.max_image_pixels)
  if not prepared:
    raise files.CollectionError(f'None of the {len(candidates)} files under {root} '
                          f'is a readable image; first: {skipped[0]}')
  prepared, copies = duplicates.resolve_duplicates(prepared, class_names)
  prepared = splits.carve_splits(prepared, carve, config.split_seed)
  counts = splits.class_counts(prepared, class_names)
  builder.info.metadata['class_counts'] = counts
  report = {
      'dataset': f'{builder.name}/{config.name}',
      'manual_dir': str(root),
      'settings': {k: getattr(config, k) for k in (
          'max_short_side', 'max_image_pixels', 'jpeg_quality',
          'validation_fraction', 'test_fraction', 'split_seed')},
      'files_considered': len(candidates),
      'examples': {s: sum(c.values()) for s, c in counts.items()},
      'class_counts': counts,
      'classes_without_examples': sorted(
          n for n in class_names if not any(c[n] for c in counts.values())),
      'skipped': [{'file': f, 'reason': r} for f, r in skipped],
      'duplicates': copies,
      'duplicates_dropped': sum(len(d['dropped']) for d in copies),
      **notes,
  }
  os.makedirs(builder.data_dir, exist_ok=True)
  with open(os.path.join(builder.data_dir, REPORT_FILE), 'w') as f:
    json.dump(report, f, indent=2)
  print(f"{builder.name}: {report['examples']} examples; "
        f"{len(skipped)} files skipped, {report['duplicates_dropped']} "
        f"duplicates dropped; see {REPORT_FILE}", flush=True)
  by_split = collections.defaultdict(list)
  for item in prepared:
    by_split[item.candidate.split].append(item)
  return dict(by_split)


def examples(items, root):
  """(key, example) pairs for tfds from `prepare_splits` output."""
  for item in items:
    key = '/'.join(files.relative_parts(item.candidate.file, root))
    yield key, {'image': item.image, 'label': item.candidate.label, 'id': key,
                **dict(item.candidate.features)}
