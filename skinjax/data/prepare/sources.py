"""What a preparation was made from: every file it listed under manual_dir,
with its size and modification time, recorded beside the prepared data so
that every later start can tell, from stat calls and zip directories alone
(nothing decoded), whether the collection has changed since."""

import json
import os

from skinjax.data.prepare import files

RECORD_FILE = 'source_files.json'


def snapshot(root: str, listing: files.Listing) -> dict:
  """{file or archive below `root`: [size, mtime_ns]} of those listed.

  Paths are relative (an archive given alone is its name), so a collection
  moved elsewhere or given as a link still matches.
  """
  stats = {}
  for path in sorted({ref.path for ref in listing.files}):
    status = os.stat(path)
    name = (os.path.basename(root) if os.path.isfile(root)
            else os.path.relpath(path, root))
    stats[name] = [status.st_size, status.st_mtime_ns]
  return stats


def record(folder: str, root: str, listing: files.Listing) -> None:
  """Writes the snapshot into `folder`, the preparation's own (tfds renames
  it into place only when complete, so a record is never half written)."""
  with open(os.path.join(folder, RECORD_FILE), 'w') as f:
    json.dump({'files': snapshot(root, listing)}, f, indent=0)


def changes(folder: str, root: str) -> str:
  """What changed in `root` since the preparation in `folder` listed it
  ('files 12 added, 1 removed'), or '' if nothing did or nothing was
  recorded (datasets that are not photo collections)."""
  path = os.path.join(folder, RECORD_FILE)
  if not os.path.exists(path):
    return ''
  with open(path) as f:
    before = json.load(f)['files']
  now = snapshot(root, files.list_files(root))
  counts = {
      'added': len(now.keys() - before.keys()),
      'removed': len(before.keys() - now.keys()),
      'changed (size or time)': sum(
          now[k] != before[k] for k in now.keys() & before.keys()),
  }
  said = [f'{n} {what}' for what, n in counts.items() if n]
  return 'files ' + ', '.join(said) if said else ''
