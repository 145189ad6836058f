"""Finding a collection's files: plain files in folders, and members of zip
archives, in a stable sorted order."""

import dataclasses
import functools
import os
import pathlib
import zipfile


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
