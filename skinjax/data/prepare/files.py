"""Finding a collection's files: plain files in folders (through links), and
members of zip archives, in a stable sorted order."""

import dataclasses
import functools
import os
import pathlib
import zipfile


class CollectionError(ValueError):
  """The user's files cannot be prepared as asked; the message names the
  file or folder."""


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
    members = _members(root_path, skipped)
    if skipped:
      raise CollectionError(f"{root}: {skipped[0]['reason']}")
    return Listing(members, [])
  files = []
  for path in _walk(root_path, skipped):
    if path.suffix.lower() == '.zip':
      files += _members(path, skipped)
    else:
      files.append(FileRef(str(path)))
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
  """The files inside the zip at `path`; none, and a report, if it is
  broken."""
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    skipped.append({'file': str(path), 'reason': f'broken zip archive: {e}'})
    return []
  return [FileRef(str(path), name) for name in sorted(names)
          if not name.endswith('/') and not _hidden_member(name)]


def _hidden_member(name):
  parts = pathlib.PurePosixPath(name).parts
  return parts[0] == '__MACOSX' or any(p.startswith('.') for p in parts)


def relative_parts(file: FileRef, root: str) -> tuple:
  """Components of `file` below `root`; below the archive if root is a zip."""
  if pathlib.Path(root).is_file():
    return pathlib.PurePosixPath(file.member).parts
  return file.parts(root)
