"""Files of a run folder written so that a crash never leaves half of one."""

import os


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` beside `path`, flushes it to the disk, then renames it over
  `path`: a reader sees the old file or the new one, never a part."""
  tmp = f'{path}.tmp'
  with open(tmp, 'wb') as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_text(path: str, text: str) -> None:
  """write_bytes of `text` in UTF-8."""
  write_bytes(path, text.encode('utf-8'))
