"""The folders tfds prepares datasets into, kept safe across processes.

tfds builds into `incomplete.*` beside the version folder and renames it
when complete, so a killed build is never trusted, but its left-over stays.
Here every skinjax build of a dataset folder holds one lock (an flock, which
the kernel releases when its holder dies, SIGKILL included), so a build
waits for a live one, and under the lock every `incomplete.*` is a dead
build's, safe to remove.
"""

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile

import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants

from skinjax import progress

LOCK_FILE = '.skinjax-prepare.lock'


# tfds's (absl) warnings that say nothing a user can act on: 'Variant
# folder ... has no dataset_info.json' only means a dataset not prepared yet,
# or being prepared, which skinjax.data.prepare says in one line; 'Using
# custom data configuration' is how every image_folder collection and
# preparation setting is named (skinjax.data.get_builder).
_UNACTIONABLE = ('Variant folder %s has no', 'Using custom data configuration')


class _NoUnactionableWarnings(logging.Filter):

  def filter(self, record):
    return not str(record.msg).startswith(_UNACTIONABLE)


logging.getLogger('absl').addFilter(_NoUnactionableWarnings())
# tfds's own bars (tqdm, as skinjax's) only where skinjax's show: on a
# terminal; a log file gets skinjax's lines alone.
tfds.display_progress_bar(progress.on_terminal())


def _folder(builder) -> str:
  """The folder of the builder's versions: <data_dir>/<name>/<config>."""
  return os.path.dirname(os.path.normpath(builder.data_dir))


@contextlib.contextmanager
def exclusive(builder):
  """Holds the lock of the builder's dataset folder while inside."""
  folder = _folder(builder)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, LOCK_FILE), 'a') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      print(f'Waiting for another process preparing {folder}.', flush=True)
      fcntl.flock(lock, fcntl.LOCK_EX)
    yield  # closing the file releases the lock


def remove_leftovers(builder) -> None:
  """Removes what killed builds left in the builder's dataset folder; call
  it holding `exclusive`, so no live build's folder is touched."""
  folder = _folder(builder)
  leftovers = sorted(n for n in os.listdir(folder)
                     if n.startswith(constants.INCOMPLETE_PREFIX))
  for name in leftovers:
    path = os.path.join(folder, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.unlink(path)
  if leftovers:
    print(f'Removed {len(leftovers)} left-over incomplete preparation(s) '
          f'in {folder}.', flush=True)


def discard(builder) -> None:
  """Removes the prepared data of `builder`. It is first renamed to a
  left-over (atomic), so a kill midway never leaves a half-removed folder
  that still looks prepared."""
  with exclusive(builder):
    folder = _folder(builder)
    aside = tempfile.mkdtemp(prefix=constants.INCOMPLETE_PREFIX, dir=folder)
    os.rename(builder.data_dir, os.path.join(aside, 'discarded'))
    shutil.rmtree(aside)
