"""Running a sweep's trials here, one after another, each an ordinary
`python -m skinjax.train` in its own run folder ROOT/<trial name>.

A trial is therefore resumed, locked and checked for config drift exactly
as any run is. A trial whose folder holds its final checkpoint, recorded
for its config, is finished and skipped: the run folder says so, no side
file that could disagree with it. SIGINT or SIGTERM to the sweep is passed
on to the trial as SIGTERM (it checkpoints and exits 0) and ends the sweep;
the same command resumes that trial and goes on. A trial that fails (a
diverged loss, a refused config) is reported and the next one runs. The
trials share JAX's persistent compilation cache (ROOT/xla_cache).
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time

from absl import flags
from ml_collections import config_flags

from skinjax import progress
from skinjax.cli import checks
from skinjax.run_folder import checkpoint_folder
from skinjax.run_folder import run_config
from skinjax.run_folder import tracking
from skinjax.sweeps import spec as spec_lib


XLA_CACHE = 'xla_cache'


@dataclasses.dataclass(frozen=True)
class Plan:
  """A trial ready to run: its folder and train's --config flags."""
  trial: spec_lib.Trial
  workdir: str
  flags: tuple


def plans(sweep: spec_lib.Sweep, root: str, overrides=()) -> list:
  """The trials of `sweep` in ROOT; `overrides` (`--config.KEY=VALUE`) go
  to every trial after the sweep's own keys, so they win over `fixed`."""
  swept = [f for f in overrides if _flag_key(f) in sweep.parameters]
  if swept:
    raise spec_lib.SweepError(f'{swept[0]}: {_flag_key(swept[0])} is swept '
                              'by the sweep file; it cannot be overridden')
  common = [spec_lib.config_flag(k, v) for k, v in sweep.fixed.items()]
  base = trial_config(sweep.config, common + list(overrides))
  common += [spec_lib.config_flag('wandb.group',
                                  base.wandb.group or sweep.name),
             spec_lib.config_flag('wandb.tags', (*base.wandb.tags,
                                                 *sweep.tags))]
  return [Plan(trial, os.path.join(root, trial.name), tuple(
      common + [spec_lib.config_flag(k, v) for k, v in trial.values.items()]
      + [spec_lib.config_flag('wandb.name', trial.name)] + list(overrides)))
          for trial in sweep.trials]


def check(sweep: spec_lib.Sweep, trial_plans: list) -> None:
  """Every trial's config passes train's value checks, before any trains:
  a SweepError naming the trial otherwise."""
  for plan in trial_plans:
    try:
      checks.validate(trial_config(sweep.config, list(plan.flags)))
    except checks.ConfigError as e:
      raise spec_lib.SweepError(f'trial {plan.trial.name}: {e}') from None


def _flag_key(flag: str) -> str:
  return flag.split('=', 1)[0].removeprefix('--config.')


def trial_config(config_file: str, config_flags_: list):
  """The config train builds from `--config FILE` and these flags (the same
  parser, so the same values and the same errors)."""
  argv = ['skinjax.sweep', '--config', config_file, *config_flags_]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file(
      'config', None, 'base config', flag_values=values, lock_config=True,
      sys_argv=argv)
  try:
    values(argv)
    return holder.value
  except Exception as e:  # config_flags raises many types; all are bad input
    raise spec_lib.SweepError(f'{config_file}: {type(e).__name__}: '
                              f"{' '.join(str(e).split())[:300]}") from None


def is_finished(plan: Plan, config_file: str) -> bool:
  """Whether the run folder holds the trial's last checkpoint, its
  validation record, and a config.json this config would resume without
  a refused change."""
  config = trial_config(config_file, list(plan.flags))
  last = config.num_train_steps
  if not os.path.isdir(os.path.join(checkpoint_folder.checkpoint_dir(plan.workdir),
                                    str(last))):
    return False  # Orbax renames a checkpoint into place once complete
  try:
    run_config.resume_changes(plan.workdir, config)
  except run_config.RunFolderError:
    return False  # train itself says what differs
  return any(r.get('step') == last and f'val/{config.best_metric}' in r
             for r in tracking.read_records(plan.workdir))


def _with_compile_cache(root: str) -> dict:
  """The environment of a trial: JAX's persistent compilation cache in
  ROOT/xla_cache unless one is set, so trials that differ only in what
  the compiled step does not hold (the seed, augmentation, data) compile
  once."""
  env = dict(os.environ)
  env.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(root, XLA_CACHE))
  return env


def run(sweep: spec_lib.Sweep, trial_plans: list) -> dict:
  """Runs the unfinished trials in order; returns {trial name: 'finished'
  | 'skipped' | 'failed (exit N)' | 'stopped'}."""
  outcome = {}
  stop = []
  child = []

  def forward(signum, _):
    stop.append(signum)
    if child and child[0].poll() is None:
      child[0].send_signal(signal.SIGTERM)

  before = {s: signal.signal(s, forward) for s in (signal.SIGINT,
                                                   signal.SIGTERM)}
  started, trained = time.monotonic(), 0
  try:
    for number, plan in enumerate(trial_plans, 1):
      name = plan.trial.name
      header = f'[{number}/{len(trial_plans)}] {name}'
      if stop:
        break
      if is_finished(plan, sweep.config):
        print(f'{header}: finished earlier, skipped ({plan.workdir})',
              flush=True)
        outcome[name] = 'skipped'
        continue
      # The trials' own bars share the terminal: the sweep's pace is text.
      print(f'{header}: training in {plan.workdir}' + progress.pace(
          time.monotonic() - started, trained, len(trial_plans) - number + 1),
            flush=True)
      child[:] = [subprocess.Popen(
          [sys.executable, '-m', 'skinjax.train', '--config', sweep.config,
           '--workdir', plan.workdir, *plan.flags], env=_with_compile_cache(
               os.path.dirname(plan.workdir)))]
      code = child[0].wait()
      trained += 1
      if code != 0:
        outcome[name] = f'failed (exit {code})'
        print(f'{header}: failed with exit status {code}', flush=True)
      elif is_finished(plan, sweep.config):
        outcome[name] = 'finished'
      else:
        outcome[name] = 'stopped'
        stop.append(signal.SIGTERM)
  finally:
    for signum, handler in before.items():
      signal.signal(signum, handler)
  return outcome
