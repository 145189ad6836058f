"""Finding a collection's files: plain files in folders (through links), and
members of zip archives, in a stable sorted order; reading them in bounded
memory.

Photo formats are compressed already, so a zip member that inflates far
beyond its compressed size is a zip bomb: sizes and ratios are checked from
the archive's directory before a member is read, and no read ever returns
more than MAX_FILE_BYTES, whatever a header claims.
"""

import dataclasses
import functools
import os
import pathlib
import zipfile

from skinjax import errors


# No photo file is larger: a 50 Mpx photo stored uncompressed as 8-bit RGB
# is 150 MB. A larger file or member is refused unread.
MAX_FILE_BYTES = 256 * 2**20
# A zip member, or a whole archive, that declares more than this many times
# its compressed size is refused, once it declares more than
# RATIO_CHECKED_ABOVE bytes (smaller ones cost nothing to read).
MAX_ZIP_RATIO = 100
RATIO_CHECKED_ABOVE = 2**20


class CollectionError(errors.UserError):
  """The user's files cannot be prepared as asked; the message names the
  file or folder."""


class FileTooLarge(ValueError):
  """A file or zip member refused unread for its size; the message says
  what it declares."""


class _BrokenArchive(ValueError):
  """A .zip whose directory cannot be read, or that is a zip bomb."""


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
    """The bytes of the file, at most MAX_FILE_BYTES; FileTooLarge beyond,
    from its declared size when it has one."""
    if self.member:
      archive = _open_zip(self.path)
      declared = archive.getinfo(self.member).file_size
      stream = archive.open(self.member)
    else:
      stream = open(self.path, 'rb')
      declared = os.fstat(stream.fileno()).st_size
    with stream:
      if declared > MAX_FILE_BYTES:
        raise FileTooLarge(_too_large(declared))
      data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
      raise FileTooLarge(_too_large(len(data)))
    return data


@functools.lru_cache(maxsize=8)
def _open_zip(path):
  return zipfile.ZipFile(path)


@dataclasses.dataclass(frozen=True)
class Listing:
  """What list_files found: the files, and what it passed over and why."""
  files: list  # [FileRef], sorted
  skipped: list  # [{'file': ..., 'reason': ...}]


def list_files(root: str) -> Listing:
  """Every file under `root` (a folder or a .zip), looking inside .zip files.

  Symbolic links are followed, each real folder once, so a link loop is
  reported rather than walked forever. A file is an archive by its name
  (.zip) and a readable central directory: a photo that happens to hold zip
  bytes stays a photo, and a broken archive is reported and passed over.
  Hidden files and macOS resource forks are ignored.
  """
  root_path = pathlib.Path(root)
  if not root_path.exists():
    raise CollectionError(f'{root} does not exist')
  skipped = []
  if root_path.is_file():
    try:
      return Listing(_members(root_path, skipped), skipped)
    except _BrokenArchive as e:
      raise CollectionError(f'{root}: {e}') from None
  files = []
  for path in _walk(root_path, skipped):
    if path.suffix.lower() != '.zip':
      files.append(FileRef(str(path)))
      continue
    try:
      files += _members(path, skipped)
    except _BrokenArchive as e:
      skipped.append({'file': str(path), 'reason': str(e)})
  return Listing(files, skipped)


def _walk(root: pathlib.Path, skipped: list) -> list:
  """Files below `root`, sorted, not hidden, through links, each real folder
  visited once."""
  found, seen = [], set()
  for folder, subfolders, names in os.walk(root, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen:
      skipped.append({'file': folder, 'reason': 'link loop: this folder was '
                      'already listed'})
      subfolders.clear()
      continue
    seen.add(real)
    subfolders[:] = sorted(d for d in subfolders if not d.startswith('.'))
    found += [pathlib.Path(folder, n) for n in names if not n.startswith('.')
              and os.path.isfile(os.path.join(folder, n))]
  return sorted(found)


def _members(path: pathlib.Path, skipped: list) -> list:
  """The files inside the zip at `path`, less those too large to read
  (added to `skipped`); _BrokenArchive if it is broken, or if those left
  would inflate it as a zip bomb."""
  try:
    with zipfile.ZipFile(path) as archive:
      infos = archive.infolist()
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    raise _BrokenArchive(f'broken zip archive: {e}') from None
  members, refused, declared = [], [], 0
  for info in sorted(infos, key=lambda info: info.filename):
    if info.filename.endswith('/') or _hidden_member(info.filename):
      continue
    file = FileRef(str(path), info.filename)
    if info.file_size > MAX_FILE_BYTES:
      refused.append({'file': str(file), 'reason': _too_large(info.file_size)})
    elif _inflates(info.file_size, info.compress_size):
      refused.append({'file': str(file), 'reason': (
          f'zip bomb: declares {_size(info.file_size)} from '
          f'{_size(info.compress_size)} compressed, more than {MAX_ZIP_RATIO} '
          'times; not read')})
    else:
      members.append(file)
      declared += info.file_size
  if _inflates(declared, os.path.getsize(path)):
    raise _BrokenArchive(
        f'zip bomb: its members declare {_size(declared)} from an archive of '
        f'{_size(os.path.getsize(path))}, more than {MAX_ZIP_RATIO} times; '
        'not read')
  skipped += refused
  return members


def _inflates(declared: int, compressed: int) -> bool:
  """Whether `declared` bytes from `compressed` is no photo but a bomb."""
  return (declared > RATIO_CHECKED_ABOVE and
          declared > MAX_ZIP_RATIO * compressed)


def _too_large(size: int) -> str:
  return (f'{_size(size)}: larger than any photo (limit '
          f'{_size(MAX_FILE_BYTES)}); not read')


def _size(size: int) -> str:
  for unit, scale in (('GiB', 2**30), ('MiB', 2**20), ('KiB', 2**10)):
    if size >= scale:
      return f'{size / scale:.1f} {unit}'
  return f'{size} bytes'


def _hidden_member(name):
  parts = pathlib.PurePosixPath(name).parts
  return parts[0] == '__MACOSX' or any(p.startswith('.') for p in parts)


def relative_parts(file: FileRef, root: str) -> tuple:
  """Components of `file` below `root`; below the archive if root is a zip."""
  if pathlib.Path(root).is_file():
    return pathlib.PurePosixPath(file.member).parts
  return file.parts(root)
