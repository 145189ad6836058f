"""Where an extended run came from, kept in its config.json
(config.extension): the parent run folder, the checkpoint, weights and head
digest extended, the classes added, how many of the parent's photos were
replayed, and every new photo by the sha256 of its file, split into
training and validation photos. With the parent's own config.json (and its
lineage, if it was extended too), a later extension or an audit can trace
every class to the photos that taught it.
"""

import os

from skinjax import errors
from skinjax.inference import restore
from skinjax.run_folder import checkpoint_folder
from skinjax.run_folder import run_config


class WorkdirHoldsAnotherRun(errors.UserError):
  """--workdir already holds a run other than the extension asked for."""


def config_of(config, parent_dir: str, parent: restore.Checkpoint, new,
              replayed: int):
  """The extended run's config: `config` (the parent's, with this
  extension's settings) with its lineage, and no moving average of the
  weights (an extension has none to keep)."""
  config = config.copy_and_resolve_references()
  config.ema_decay = 0.0
  lineage = config.extension
  lineage.parent = os.path.abspath(parent_dir)
  lineage.parent_step = int(parent.step)
  lineage.parent_weights = parent.weights
  lineage.parent_params_digest = restore.params_digest(parent.state.params)
  lineage.classes_added = tuple(new.names)
  lineage.replayed_photos = int(replayed)
  lineage.train_photos = photos(new.names, new.train)
  lineage.validation_photos = photos(new.names, new.validation)
  return config


def photos(names, examples) -> tuple:
  """((class, sha256 of the file), ...) of `examples`."""
  return tuple((names[e['label']], e['sha256']) for e in examples)


def holds_this(workdir: str, config) -> bool:
  """Whether `workdir` already holds the extension `config` describes (a
  rerun); False for a folder with no run; WorkdirHoldsAnotherRun for one
  with another run, trained or extended otherwise."""
  if not os.path.exists(os.path.join(workdir, run_config.CONFIG_FILE)):
    folder = checkpoint_folder.checkpoint_dir(workdir)
    if os.path.isdir(folder) and any(n.isdigit() for n in os.listdir(folder)):
      raise WorkdirHoldsAnotherRun(
          f'--workdir={workdir} holds checkpoints of another run; use another '
          '--workdir')
    return False
  held = run_config.read(workdir)
  differs = sorted(run_config.differences(held, config))
  if not differs:
    return True
  what = ('an extension of ' + held.extension.parent if held.extension.parent
          else 'a trained run')
  raise WorkdirHoldsAnotherRun(
      f'--workdir={workdir} holds another run ({what}; its '
      f'{run_config.CONFIG_FILE} differs in {", ".join(differs[:3])}'
      f'{", ..." if len(differs) > 3 else ""}); use another --workdir')
