"""Files of a run folder written so that a crash never leaves half of one."""

import os


def write_text(path: str, text: str) -> None:
  """Writes `text` beside `path`, flushes it to the disk, then renames it over
  `path`: a reader sees the old file or the new one, never a part."""
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
