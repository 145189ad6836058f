"""Carving validation and test splits out of train: each group's split is a
keyed hash of its key and the split seed, so it never moves when photos are
added or removed, and groups (lesions, duplicates) never cross splits.

Classes are stratified in expectation only. Each group is placed on its
own, so the share of a class's n groups that a split of fraction p receives
is binomially spread: within sqrt(p * (1 - p) / n) of p typically, and
within 4 times that (the tolerance the tests hold it to) for all but about
1 in 16,000 classes and splits. For n = 100 and p = 0.2: typically 16 to 24
groups, and 4 to 36 at worst. Exact per-class counts would need each group
to know the others, so adding one would move some.
"""

import collections
import dataclasses
import hashlib


def _unit_interval(key: str, seed: int) -> float:
  """A uniform number in [0, 1) given by `key` and `seed` alone."""
  digest = hashlib.blake2b(key.encode(), key=str(seed).encode(),
                           digest_size=8).digest()
  return int.from_bytes(digest, 'big') / 2**64


def split_of(key: str, fractions: dict, seed: int, source: str = 'train'):
  """The split of group `key`: fractions are consecutive intervals of the
  unit interval, in the order given; the rest stays in `source`. With test
  listed first, a changed validation fraction never moves a test group."""
  point, start = _unit_interval(key, seed), 0.0
  for split, fraction in fractions.items():
    if start <= point < start + fraction:
      return split
    start += fraction
  return source


def carve_splits(prepared, fractions: dict, seed: int, source: str = 'train'):
  """Moves each group of `source` examples into the split `split_of` gives
  its group key; examples of other splits stay where they are."""
  return [dataclasses.replace(item, candidate=dataclasses.replace(
      item.candidate, split=split_of(item.group_key, fractions, seed, source)))
          if item.candidate.split == source else item
          for item in prepared]


def class_counts(prepared, class_names) -> dict:
  counts = collections.defaultdict(lambda: dict.fromkeys(class_names, 0))
  for item in prepared:
    counts[item.candidate.split][class_names[item.candidate.label]] += 1
  return dict(counts)
