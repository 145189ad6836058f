"""Exact duplicates in a collection: the same decoded pixels, wherever and
however often they occur."""

import collections
import dataclasses

_HELD_OUT_FIRST = ('test', 'validation', 'train')


def resolve_duplicates(prepared, class_names):
  """Finds identical images; keeps them out of train if a copy is held out.

  Returns the kept examples and a report entry per image that occurs more
  than once. The groups of all copies of an image are merged (transitively),
  so carving new splits keeps every copy, and its group, on one side; a
  merged group is keyed by its smallest key, whatever the files' order.
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
      first, second = sorted((root(c.group_key), root(keep[0].group_key)))
      if first != second:
        parent[second] = first
    report.append({
        'files': [str(c.candidate.file) for c in copies],
        'identical_bytes': len({c.file_digest for c in copies}) == 1,
        'labels': sorted({class_names[c.candidate.label] for c in copies}),
        'splits': sorted(splits),
        'dropped': [str(c.candidate.file) for c in copies if c not in keep],
    })
  kept = [dataclasses.replace(item, candidate=dataclasses.replace(
      item.candidate, group=root(item.group_key))) for item in kept]
  return kept, report
