"""The command line of the entry points: `--config FILE --config.KEY=VALUE`.

Every way a flag or config can be wrong becomes a one-line error that names
the flag or key, before any data or compile work starts. Training takes its
config from a file; evaluate and predict take the run folder's own
config.json (skinjax.run_folder.run_config) and accept changes only to the
keys that alter how a checkpoint is scored.
"""

import dataclasses
import difflib
import re
import runpy
import sys

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from skinjax.config import defaults
from skinjax.run_folder import run_config


def parse_flags(argv, known_only: bool = False):
  """absl flags parser for `app.run` that exits with one line on a bad flag
  (with `known_only`, unknown flags are left in the arguments returned).

  Also quiets the INFO logs of orbax and tfds unless --verbosity is given.
  """
  try:
    remaining = flags.FLAGS(argv, known_only=known_only)
    config = flags.FLAGS['config'].value if 'config' in flags.FLAGS else None
    if config is not None:
      config.keys()  # config_flags defers a file's load error to first use.
  except Exception as e:  # config_flags raises many types; all mean bad input.
    sys.exit(f'error: {_explain(argv, e)}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  return remaining


def _explain(argv, error) -> str:
  """One line saying which flag or config key is wrong."""
  path = _config_path(argv)
  try:
    if path is None:
      config = defaults.get_config()
    else:
      file, *arg = path.split(':', 1)
      config = runpy.run_path(file)['get_config'](*arg)
  except Exception as e:  # The file itself is broken: name it.
    return f'{path}: {_one_line(e)}'
  for arg in argv[1:]:
    if arg.startswith('--config.'):
      problem = _unknown_key(config, arg[len('--config.'):].split('=', 1)[0])
      if problem:
        return f'{arg}: {problem}'
  return _one_line(error)


def _config_path(argv):
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _one_line(error) -> str:
  text = str(error).replace('\\n', ' ')
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
    text = text[1:-1]
  # ml_collections lists every sibling key of a locked config: drop that.
  text = re.sub(r' Other fields present: .*?(?= Did you mean|$)', '', text,
                flags=re.S)
  return f'{type(error).__name__}: ' + ' '.join(text.split())


def _unknown_key(config, dotted_key: str):
  """Message if `dotted_key` is not a key of `config`, else None."""
  node, parts = config, dotted_key.split('.')
  for i, part in enumerate(parts):
    keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
    if part not in keys:
      close = difflib.get_close_matches(part, keys, n=1)
      guess = '.'.join(parts[:i] + close + parts[i + 1:])
      hint = f" (did you mean '{guess}'?)" if close else ''
      return f"unknown config key '{dotted_key}'{hint}"
    node = node[part]
  return None


@dataclasses.dataclass(frozen=True)
class RunFlags:
  """The flags with which evaluate and predict name a run and a checkpoint."""
  workdir: flags.FlagHolder
  config: flags.FlagHolder
  checkpoint: flags.FlagHolder
  weights: flags.FlagHolder

  def evaluation_config(self) -> ml_collections.ConfigDict:
    """The run's own config.json, changed only where the command line asks
    for an evaluation-time change; raises ConfigError or
    run_config.RunFolderError naming the key or file."""
    return run_config.for_evaluation(self.workdir.value, self.asked())

  def asked(self) -> dict:
    """{dotted key: value} the command line asks to change in the run's
    config.json: where --config FILE differs from it, else the
    --config.KEY=VALUE overrides."""
    if flags.FLAGS[self.config.name].present:
      return run_config.differences(run_config.read(self.workdir.value),
                                    self.config.value)
    return config_flags.get_override_values(flags.FLAGS[self.config.name])


def define_run_flags(caller: str, run_flag: str = 'workdir',
                     also: str = '') -> RunFlags:
  """Defines --workdir, --config, --checkpoint and --weights (evaluate,
  predict, serve, export and extend share them, so they mean the same in
  all), listed in the --help of the command module named `caller` (its
  __name__). `run_flag` names the run's flag (extend reads its run from
  --from); `also`: what else the command's --config may change."""
  module = sys.argv[0] if caller == '__main__' else caller
  try:  # config_flags applies --config.KEY=VALUE from sys.argv right here
    return _define_run_flags(module, run_flag, also)
  except Exception as e:  # pylint: disable=broad-except
    sys.exit(f'error: {_explain(sys.argv, e)}')


def _define_run_flags(module: str, run_flag: str, also: str) -> RunFlags:
  run_flags = RunFlags(
      workdir=flags.DEFINE_string(
          run_flag, None, 'Run folder written by skinjax.train: its '
          'checkpoints/ and config.json.', required=True, module_name=module),
      config=config_flags.DEFINE_config_file(
          'config', defaults.__file__,
          'Optional: only its evaluation-time keys may differ from the '
          f'run\'s config.json ({", ".join(run_config.EVALUATION_KEYS)})'
          f'{also}; so may --config.KEY=VALUE overrides. Anything else is '
          'refused.',
          lock_config=True),
      checkpoint=flags.DEFINE_string(
          'checkpoint', 'best',
          "'best' (by validation config.best_metric; the latest if none was "
          "ranked), 'latest' or a step number.", module_name=module),
      weights=flags.DEFINE_enum(
          'weights', 'raw', ['raw', 'ema'],
          "'ema': the moving average of the weights (runs trained with "
          'config.ema_decay > 0).', module_name=module))
  flags.FLAGS.register_flag_by_module(module, flags.FLAGS['config'])
  return run_flags
