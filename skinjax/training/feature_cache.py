"""A frozen backbone's features of every photo and view, computed once.

The frozen-feature path (config.frozen_features) trains only the classifier
head on these, so each photo goes through the backbone once per view rather
than once per epoch. Features are the penultimate ones the head reads
(models.layers.PENULTIMATE), from the same eval step scoring uses.

The cache is a folder per key: the digest of the backbone's weights, the
model, the preprocessing (scoring size, crop, and the augmentation when
views > 1), the dataset's name, version, split and held-out classes, and the
seed. Change any of them and the features are computed afresh in a new
folder. Within a folder, each chunk of photos and view is one .npz written
whole then renamed into place, so an interrupted extraction resumes at the
first missing chunk and never trusts a half-written one; a damaged chunk is
computed again.
"""

import hashlib
import io
import json
import math
import os
import sys
import zipfile

import jax
import numpy as np

from skinjax import models
from skinjax import progress
from skinjax.data import pipeline
from skinjax.inference import forward
from skinjax.run_folder import atomic

KEY_FILE = 'key.json'


def backbone_digest(params) -> str:
  """A fingerprint of every weight but the classifier head's."""
  digest = hashlib.sha256()
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(
      {k: v for k, v in params.items() if k != models.HEAD}))
  for path, leaf in leaves:
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


def cache_key(config, builder, split: str, views: int, backbone: str) -> dict:
  """Everything the features of `split` depend on."""
  key = {
      'backbone_digest': backbone,
      'model': config.model.name,
      'dtype': config.model.dtype,
      'image_size': pipeline.eval_image_size(config),
      'crop_fraction': config.augment.eval_crop_fraction,
      'dataset': config.dataset.name,
      'dataset_version': str(builder.info.version),
      'split': split,
      'held_out_classes': sorted(config.dataset.held_out_classes),
      'views': views,
      'chunk_size': config.frozen_features.chunk_size,
  }
  if views > 1:  # only augmented views depend on these
    key['augment'] = config.augment.to_dict()
    key['seed'] = config.seed
  return key


def folder(cache_dir: str, key: dict) -> str:
  text = json.dumps(key, sort_keys=True)
  return os.path.join(os.path.expanduser(cache_dir),
                      hashlib.sha256(text.encode()).hexdigest()[:16])


def extract(config, key: dict, cache_dir: str, source, eval_step, state,
            mesh) -> tuple:
  """(features (views, photos, dim) float32, labels (photos,)) of `source`,
  read from the cache where there, computed and cached where not."""
  path = folder(cache_dir, key)
  os.makedirs(path, exist_ok=True)
  atomic.write_bytes(os.path.join(path, KEY_FILE),
                     json.dumps(key, indent=1, sort_keys=True).encode())
  size = config.frozen_features.chunk_size
  chunks = math.ceil(len(source) / size)
  features = []
  shown = progress.bar(total=key['views'] * len(source), unit='photo',
                       desc=f"features of {key['split']}")
  for view in range(key['views']):
    parts = []
    for chunk in range(chunks):
      part = _SubSource(source, chunk * size, min(len(source),
                                                  (chunk + 1) * size))
      file = os.path.join(path, f'view{view}_chunk{chunk}.npz')
      cached = _read(file, len(part))
      if cached is None:
        result = forward.predict(eval_step, state, pipeline.view_dataset(
            part, config, view), mesh)
        cached = (result['features'].astype(np.float32),
                  result['label'].astype(np.int32))
        atomic.write_bytes(file, _npz_bytes(*cached))
      parts.append(cached)
      shown.update(len(part))
    features.append(np.concatenate([f for f, _ in parts]))
  shown.close()
  # Every view holds the same photos in the same order: the last one's.
  return np.stack(features), np.concatenate([y for _, y in parts])


class _SubSource:
  """Photos [start, stop) of a random-access source."""

  def __init__(self, source, start: int, stop: int):
    self._source, self._start, self._stop = source, start, stop

  def __len__(self):
    return self._stop - self._start

  def __getitem__(self, i):
    return self._source[self._start + i]


def _read(file: str, photos: int):
  """(features, labels) of a cached chunk, or None if absent or damaged."""
  if not os.path.exists(file):
    return None
  try:
    with np.load(file) as chunk:
      features, labels = chunk['features'], chunk['labels']
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    print(f'warning: {file} is damaged; computing it again', file=sys.stderr)
    return None
  if len(features) != photos or len(labels) != photos:
    return None
  return features, labels


def _npz_bytes(features, labels) -> bytes:
  buffer = io.BytesIO()
  np.savez(buffer, features=features, labels=labels)
  return buffer.getvalue()
