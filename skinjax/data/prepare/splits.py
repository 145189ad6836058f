"""Carving validation and test splits out of train: stratified by class,
grouped (by lesion or duplicate group), deterministic given a seed."""

import collections
import dataclasses

import numpy as np


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
