"""Preparing real photo collections: decode once, clean, shrink, deduplicate, split.

The builders of real datasets (dermnet, ham10000, image_folder) find their
files and labels, then hand them to `prepare_splits`, which

  * decodes every file once (EXIF-rotated, converted to 8-bit RGB from any
    mode, short side shrunk to `max_short_side`) and stores it as JPEG, so
    training decodes small files fast;
  * skips corrupt, truncated, empty and non-image files, counting and listing
    them, instead of failing;
  * finds exact duplicates (same decoded pixels, which covers same bytes),
    keeps a duplicate out of the training split when a copy is in a held-out
    split, and keeps duplicates together when carving new splits;
  * carves validation/test splits deterministically, stratified by class and
    grouped (e.g. by lesion), so no group crosses splits;
  * writes `prepare_report.json` beside the prepared files and records class
    counts in the dataset info.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import json
import multiprocessing
import os
import pathlib
import zipfile

import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow_datasets as tfds

REPORT_FILE = 'prepare_report.json'
_HELD_OUT_FIRST = ('test', 'validation', 'train')


@dataclasses.dataclass(frozen=True)
class FileRef:
  """A plain file, or a member of a zip archive."""
  path: str
  member: str = ''

  def __str__(self):
    path = os.path.realpath(self.path)  # the user's file, not a link to it
    return f'{path}/{self.member}' if self.member else path

  def parts(self, root: str) -> tuple:
    """Path components below `root`, looking through archives."""
    inside = pathlib.PurePosixPath(self.member).parts if self.member else ()
    return pathlib.Path(self.path).relative_to(root).parts + inside

  def read(self) -> bytes:
    if self.member:
      return _open_zip(self.path).read(self.member)
    with open(self.path, 'rb') as f:
      return f.read()


@functools.lru_cache(maxsize=8)
def _open_zip(path):
  return zipfile.ZipFile(path)


def list_files(root: str) -> list:
  """Every file under `root` (a folder or a .zip), looking inside .zip files.

  Hidden files and macOS resource forks are ignored; the order is sorted.
  """
  root_path = pathlib.Path(root)
  if not root_path.exists():
    raise FileNotFoundError(f'manual_dir {root} does not exist')
  paths = [root_path] if root_path.is_file() else sorted(
      p for p in root_path.rglob('*') if p.is_file())
  files = []
  for path in paths:
    if any(part.startswith('.') for part in path.parts[len(root_path.parts):]):
      continue
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        files += [FileRef(str(path), name) for name in sorted(archive.namelist())
                  if not name.endswith('/') and not _hidden_member(name)]
    else:
      files.append(FileRef(str(path)))
  return files


def _hidden_member(name):
  parts = pathlib.PurePosixPath(name).parts
  return parts[0] == '__MACOSX' or any(p.startswith('.') for p in parts)


def relative_parts(file: FileRef, root: str) -> tuple:
  """Components of `file` below `root`; below the archive if root is a zip."""
  if pathlib.Path(root).is_file():
    return pathlib.PurePosixPath(file.member).parts
  return file.parts(root)


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A file a builder wants as an example."""
  file: FileRef
  label: int
  split: str  # the split the layout puts it in ('train' if it says nothing)
  group: str = ''  # examples of one group never cross splits; '' = the file
  features: tuple = ()  # extra (name, value) pairs stored with the example

  @property
  def group_key(self):
    return self.group or str(self.file)


@dataclasses.dataclass(frozen=True)
class Prepared:
  candidate: Candidate
  image: bytes  # JPEG
  pixel_digest: str
  file_digest: str = ''  # tells byte-identical copies from re-encodes


class BadImageError(ValueError):
  pass


def to_rgb(image: Image.Image) -> Image.Image:
  """8-bit RGB from any PIL mode: 16-bit, CMYK, palette, grey, with alpha."""
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
    values = np.asarray(image, np.float64)
    scale = 65535.0 if values.max() > 255 else 255.0
    image = Image.fromarray(np.clip(values / scale * 255, 0, 255)
                            .round().astype(np.uint8))
  if image.mode == 'P':
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
    background = Image.new('RGBA', image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, image.convert('RGBA'))
  return image.convert('RGB')


def normalise_image(data: bytes, max_short_side: int, quality: int):
  """JPEG bytes of the upright RGB image, short side <= max; pixel digest.

  Raises BadImageError with the reason for files that are not usable images.
  """
  if not data:
    raise BadImageError('empty file')
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
    image = to_rgb(ImageOps.exif_transpose(image))
  except Image.DecompressionBombError as e:
    raise BadImageError(f'too many pixels: {e}') from None
  except Image.UnidentifiedImageError:
    raise BadImageError('not an image') from None
  except (OSError, SyntaxError, ValueError) as e:
    raise BadImageError(f'corrupt or truncated: {e}') from None
  width, height = image.size
  if min(width, height) > max_short_side:
    factor = max_short_side / min(width, height)
    image = image.resize((max(1, round(width * factor)),
                          max(1, round(height * factor))),
                         Image.Resampling.LANCZOS, reducing_gap=3.0)
  pixels = np.asarray(image)
  digest = hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes())
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=quality)
  return buffer.getvalue(), digest.hexdigest()


def _prepare_one(job):
  candidate, max_short_side, quality = job
  try:
    data = candidate.file.read()
    image, pixel_digest = normalise_image(data, max_short_side, quality)
  except BadImageError as e:
    return candidate, str(e)
  except (OSError, zipfile.BadZipFile) as e:
    return candidate, f'unreadable: {e}'
  return Prepared(candidate, image, pixel_digest,
                  hashlib.sha256(data).hexdigest())


def prepare_images(candidates, max_short_side: int, quality: int):
  """Decodes and re-encodes every candidate in parallel processes.

  Returns (prepared, skipped) where skipped is a list of (file, reason).
  """
  workers = max(1, min(len(os.sched_getaffinity(0)), 16))
  jobs = [(c, max_short_side, quality) for c in candidates]
  prepared, skipped = [], []
  with concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context('spawn')) as pool:
    for result in pool.map(_prepare_one, jobs, chunksize=32):
      if isinstance(result, Prepared):
        prepared.append(result)
      else:
        skipped.append((str(result[0].file), result[1]))
  return prepared, skipped


def resolve_duplicates(prepared, class_names):
  """Finds identical images; keeps them out of train if a copy is held out.

  Returns the kept examples and a report entry per image that occurs more
  than once. The groups of all copies of an image are merged (transitively),
  so carving new splits keeps every copy, and its group, on one side.
  """
  by_pixels = collections.defaultdict(list)
  for item in prepared:
    by_pixels[item.pixel_digest].append(item)
  parent = {}

  def root(key):
    while parent.get(key, key) != key:
      key = parent[key]
    return key

  kept, report = [], []
  for copies in by_pixels.values():
    splits = {c.candidate.split for c in copies}
    held_out = next(s for s in _HELD_OUT_FIRST if s in splits)
    keep = [c for c in copies if c.candidate.split == held_out]
    kept += keep
    if len(copies) == 1:
      continue
    for c in keep[1:]:
      parent[root(c.candidate.group_key)] = root(keep[0].candidate.group_key)
    report.append({
        'files': [str(c.candidate.file) for c in copies],
        'identical_bytes': len({c.file_digest for c in copies}) == 1,
        'labels': sorted({class_names[c.candidate.label] for c in copies}),
        'splits': sorted(splits),
        'dropped': [str(c.candidate.file) for c in copies if c not in keep],
    })
  kept = [dataclasses.replace(item, candidate=dataclasses.replace(
      item.candidate, group=root(item.candidate.group_key))) for item in kept]
  return kept, report


def carve_splits(prepared, fractions: dict, seed: int, source: str = 'train'):
  """Moves groups of `source` examples into new splits, stratified by label.

  `fractions` maps new split names to the fraction of each class's groups
  they receive, in order. Deterministic given `seed`.
  """
  groups = collections.defaultdict(list)
  for item in prepared:
    if item.candidate.split == source:
      groups[item.candidate.group_key].append(item)
  by_label = collections.defaultdict(list)
  for key, members in groups.items():
    label = collections.Counter(m.candidate.label for m in members).most_common(1)
    by_label[label[0][0]].append(key)
  target = {}
  for label, keys in sorted(by_label.items()):
    keys = np.random.default_rng([seed, label]).permutation(sorted(keys))
    start = 0
    for split, fraction in fractions.items():
      count = int(round(fraction * len(keys)))
      target.update({k: split for k in keys[start:start + count]})
      start += count
  return [dataclasses.replace(item, candidate=dataclasses.replace(
      item.candidate, split=target[item.candidate.group_key]))
          if item.candidate.group_key in target else item
          for item in prepared]


def class_counts(prepared, class_names) -> dict:
  counts = collections.defaultdict(lambda: dict.fromkeys(class_names, 0))
  for item in prepared:
    counts[item.candidate.split][class_names[item.candidate.label]] += 1
  return dict(counts)


def prepare_splits(builder, candidates, *, root: str, carve: dict,
                   notes: dict) -> dict:
  """Everything between found files and the examples of each split: see the
  module doc. Returns {split: [Prepared]}; pass each to `examples`.

  `carve` maps new split names to fractions taken from 'train'; `notes` are
  builder findings (missing classes, unmatched files) added to the report.
  """
  if not candidates:
    raise FileNotFoundError(
        f'No images found for {builder.name} under {root}: expected '
        f'{builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip().splitlines()[0]}')
  config = builder.builder_config
  class_names = builder.info.features['label'].names
  prepared, skipped = prepare_images(candidates, config.max_short_side,
                                     config.jpeg_quality)
  if not prepared:
    raise ValueError(f'None of the {len(candidates)} files under {root} is a '
                     f'readable image; first: {skipped[0]}')
  prepared, duplicates = resolve_duplicates(prepared, class_names)
  prepared = carve_splits(prepared, carve, config.split_seed)
  counts = class_counts(prepared, class_names)
  builder.info.metadata['class_counts'] = counts
  report = {
      'dataset': f'{builder.name}/{config.name}',
      'manual_dir': str(root),
      'settings': {k: getattr(config, k) for k in (
          'max_short_side', 'jpeg_quality', 'validation_fraction',
          'test_fraction', 'split_seed')},
      'files_considered': len(candidates),
      'examples': {s: sum(c.values()) for s, c in counts.items()},
      'class_counts': counts,
      'classes_without_examples': sorted(
          n for n in class_names if not any(c[n] for c in counts.values())),
      'skipped': [{'file': f, 'reason': r} for f, r in skipped],
      'duplicates': duplicates,
      'duplicates_dropped': sum(len(d['dropped']) for d in duplicates),
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
    key = '/'.join(relative_parts(item.candidate.file, root))
    yield key, {'image': item.image, 'label': item.candidate.label, 'id': key,
                **dict(item.candidate.features)}


@dataclasses.dataclass
class PreparedImagesConfig(tfds.core.BuilderConfig):
  """How a collection is prepared; non-default values get their own folder."""
  max_short_side: int = 256
  jpeg_quality: int = 90
  validation_fraction: float = 0.1  # carved from train when it has none
  test_fraction: float = 0.2  # carved from train when there is no test split
  split_seed: int = 0


def configure(builder_config: PreparedImagesConfig, dataset_config):
  """`builder_config` with the preparation settings of `dataset_config`.

  The name gains a suffix per setting that differs from the builder's
  default, so differently prepared data never share a folder:
  'dermnet/23' vs 'dermnet/23-val0.2-512px'.
  """
  changes = {k: dataset_config[k] for k in (
      'max_short_side', 'validation_fraction', 'test_fraction', 'split_seed')
             if dataset_config[k] != getattr(builder_config, k)}
  if not changes:
    return builder_config
  suffix = {'max_short_side': '{}px', 'validation_fraction': 'val{}',
            'test_fraction': 'test{}', 'split_seed': 'split{}'}
  name = '-'.join([builder_config.name] +
                  [suffix[k].format(v) for k, v in changes.items()])
  return dataclasses.replace(builder_config, name=name, **changes)
