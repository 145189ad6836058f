"""WORKDIR/class_names.json: the names of the model's outputs, in order.

Training writes it, so that scoring needs the run folder only, never the
dataset the run was trained on. Run folders from before it was written get
it from the first `evaluate`, which has the dataset.
"""

import json
import os

from skinjax.run_folder import atomic
from skinjax.run_folder import run_config

FILE = 'class_names.json'


def path(workdir: str) -> str:
  return os.path.join(workdir, FILE)


def write(workdir: str, names) -> str:
  """Writes the list atomically: a crash never leaves half a file."""
  atomic.write_text(path(workdir), json.dumps(list(names), indent=2))
  return path(workdir)


def exists(workdir: str) -> bool:
  return os.path.exists(path(workdir))


def read(workdir: str) -> list:
  """The class names; RunFolderError naming the file and the command that
  writes it when they cannot be read."""
  try:
    with open(path(workdir)) as f:
      names = json.load(f)
  except FileNotFoundError:
    raise run_config.RunFolderError(
        f'{path(workdir)} not found: a run folder from before skinjax wrote '
        'it; `python -m skinjax.evaluate --workdir '
        f'{workdir}` writes it once (it needs the run\'s dataset)') from None
  except (OSError, ValueError) as e:
    raise run_config.RunFolderError(f'{path(workdir)}: unreadable ({e})'
                                    ) from None
  if not (isinstance(names, list) and names
          and all(isinstance(n, str) for n in names)):
    raise run_config.RunFolderError(
        f'{path(workdir)}: expected a JSON list of class names')
  return names
