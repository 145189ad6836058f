"""One owner per run folder: WORKDIR/lock, held while a run trains in it.

Two runs in one folder would sweep each other's checkpoints and overwrite
each other's records. The first run holds an exclusive `flock` on
WORKDIR/lock, which the kernel releases however the process ends (a
SIGKILL, a power cut of that host), so a lock left by a dead run is simply
taken over; the file also names its holder (host, pid, start time) for the
error a second run gets.

Where `flock` is not supported (Lustre mounted without `flock`), the file
alone is the lock: a holder on this host that no longer runs is taken over,
one on another host can only be cleared by deleting the file.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import stat

from skinjax import errors

LOCK_FILE = 'lock'


class RunFolderLocked(errors.UserError):
  """Another live run holds the run folder; the message names it."""


class UnsafeLockFile(errors.UserError):
  """WORKDIR/lock is not a plain file of its own (a symlink, a hard link, a
  folder): writing our name into it would overwrite whatever it stands
  for."""


@contextlib.contextmanager
def hold(workdir: str):
  """Holds WORKDIR/lock for the `with` block; RunFolderLocked if a live run
  holds it."""
  path = os.path.join(workdir, LOCK_FILE)
  fd = _open(path)
  try:
    if _flock_supported(fd, path):
      _record_holder(fd)
    else:
      _take_without_flock(fd, path)
    yield
  finally:
    os.close(fd)  # releases the flock


def _open(path: str) -> int:
  """The lock file, created if missing, never through a symlink; nothing is
  written to it until its lock is held."""
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                 | os.O_NONBLOCK, 0o644)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise UnsafeLockFile(f'{path} is a symlink; remove it (a run folder\'s '
                           'lock is a plain file the run writes)') from None
    raise UnsafeLockFile(f'{path}: {e.strerror}') from None
  info = os.fstat(fd)
  if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
    os.close(fd)
    raise UnsafeLockFile(f'{path} is not a plain file of its own '
                         f'({stat.filemode(info.st_mode)}, {info.st_nlink} '
                         'links); remove it')
  return fd


def _flock_supported(fd: int, path: str) -> bool:
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    raise RunFolderLocked(_held_by(path)) from None
  except OSError as e:
    if e.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
      return False
    raise


def _take_without_flock(fd: int, path: str) -> None:
  holder = _read_holder(path)
  if holder and _is_alive_elsewhere(holder):
    raise RunFolderLocked(_held_by(path))
  _record_holder(fd)


def _is_alive_elsewhere(holder: dict) -> bool:
  """Whether `holder` may still run: on another host we cannot tell."""
  if holder.get('host') != socket.gethostname():
    return True
  try:
    os.kill(int(holder.get('pid', -1)), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError):
    return True
  return int(holder['pid']) != os.getpid()


def _record_holder(fd: int) -> None:
  """Writes who holds the lock into the (already held) lock file."""
  holder = {'host': socket.gethostname(), 'pid': os.getpid(),
            'started': datetime.datetime.now().astimezone().isoformat(
                timespec='seconds')}
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(holder).encode(), 0)
  os.fsync(fd)


def _read_holder(path: str) -> dict:
  try:
    with open(path) as f:
      holder = json.load(f)
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}  # empty or torn: its writer died while writing it


def _held_by(path: str) -> str:
  holder = _read_holder(path)
  who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
         f"started {holder.get('started', '?')}")
  return (f'{os.path.dirname(path)} is in use by another run ({who}; '
          f'{path}): wait for it to end, stop it, or use another --workdir')
