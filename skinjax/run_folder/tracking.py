"""Where metrics go: WORKDIR/metrics.jsonl always, Weights & Biases by config.

The W&B run id is kept in WORKDIR/wandb_run_id so that a resumed run, and
the evaluation of its checkpoints, continue the same W&B run. Every record
carries `time/wall_seconds`: the run's wall time so far, summed across
resumes (each process's time from its MetricWriter on, dataset preparation
left out; steps redone after a crash count once, their restart's time in
full), so runs compare on time to quality.

A run's W&B record carries its group, tags, notes and name from
config.wandb, and a job type per program that writes to it (`train`,
`evaluate`): training and its evaluations are one W&B run. The config is
logged flat, one dotted key per value (`optimizer.learning_rate`), so every
key is a column that filters and groups the W&B runs table. The summary
holds the best validation `best_metric` and its step (`best/...`); each
evaluation adds its split's metrics.
"""

import json
import netrc
import os
import re
import secrets
import string
import time
from urllib import parse

from absl import logging
import wandb

from skinjax.run_folder import atomic
from skinjax.run_folder import run_config

RUN_ID_FILE = 'wandb_run_id'
METRICS_FILE = 'metrics.jsonl'
WALL_TIME = 'time/wall_seconds'
# config.wandb.mode.
WANDB_MODES = ('online', 'offline', 'disabled')
# Summary keys of the best validation record: BEST_PREFIX + 'val/top1', ...
BEST_PREFIX = 'best/'
BEST_STEP = 'best/step'


def has_wandb_credentials() -> bool:
  """Whether an API key is configured, without touching the network."""
  if os.environ.get('WANDB_API_KEY'):
    return True
  host = parse.urlparse(os.environ.get('WANDB_BASE_URL',
                                       'https://api.wandb.ai')).hostname
  try:
    return netrc.netrc(os.environ.get('NETRC')).authenticators(host) is not None
  except (FileNotFoundError, netrc.NetrcParseError):
    return False


def init_wandb(wandb_config, workdir: str, config_dict: dict,
               job_type: str = 'evaluate', environment: dict | None = None):
  """Starts or resumes the W&B run of `workdir`, as `job_type` (training
  passes 'train'); None when disabled. `environment` (this start's entry
  of environment.json) goes into the run's config as 'environment', so W&B
  tells runs apart by versions and devices as `compare` does.

  `online` falls back to `offline` when no API key is configured or W&B
  cannot be reached (after WANDB_INIT_TIMEOUT seconds, 90 by default).
  """
  mode = wandb_config.mode
  if mode == 'disabled':
    return None
  if mode == 'online' and not has_wandb_credentials():
    logging.warning('No W&B API key configured: logging offline. Upload later '
                    'with `wandb sync %s/wandb`.', workdir)
    mode = 'offline'
  settings = _settings(wandb_config, workdir, config_dict, job_type,
                       environment)
  try:
    return _start_run(mode, settings)
  except Exception as e:  # wandb raises CommError, ServerResponseError, ...
    if mode == 'offline':
      raise
    logging.warning('W&B failed online (%s): logging offline. Upload later '
                    'with `wandb sync %s/wandb`.', _one_line(e), workdir)
    return _restart_offline(settings)


def _settings(wandb_config, workdir: str, config_dict: dict,
              job_type: str, environment: dict | None = None) -> dict:
  """wandb.init's arguments for the run of `workdir`, but the mode."""
  config = flat_config(config_dict)
  if environment:
    config['environment'] = environment
  return dict(project=wandb_config.project,
              entity=wandb_config.entity or None,
              name=wandb_config.name or None, tags=list(wandb_config.tags),
              group=wandb_config.group or None,
              notes=wandb_config.notes or None, job_type=job_type,
              id=_run_id(workdir), dir=workdir,
              config=config)


def flat_config(config_dict: dict) -> dict:
  """{'optimizer': {'learning_rate': 0.1}} -> {'optimizer.learning_rate':
  0.1}; sequences become text ('(0.35, 1.0)'): one filterable value per
  column of the W&B runs table."""
  flat = run_config.flatten(config_dict)
  return {key: str(tuple(value)) if isinstance(value, (list, tuple)) else value
          for key, value in flat.items()}


def _run_id(workdir: str) -> str:
  """The run's W&B id, kept in WORKDIR/wandb_run_id; a new one (written
  atomically) if the file is missing, empty or damaged."""
  id_path = os.path.join(workdir, RUN_ID_FILE)
  if os.path.exists(id_path):
    with open(id_path) as f:
      run_id = f.read().strip()
    if re.fullmatch(r'[A-Za-z0-9_-]{1,64}', run_id):
      return run_id
    logging.warning('%s holds no usable W&B run id (%r): starting a new W&B '
                    'run.', id_path, run_id[:40])
  run_id = ''.join(secrets.choice(string.ascii_lowercase + string.digits)
                   for _ in range(8))
  atomic.write_text(id_path, run_id)
  return run_id


def _start_run(mode: str, settings: dict):
  run = wandb.init(mode=mode, resume='allow', **settings)
  # Our own step axis: a resumed run re-logs steps after its checkpoint,
  # which W&B would drop if they were passed as its monotonic `step`.
  run.define_metric('step')
  run.define_metric('*', step_metric='step')
  return run


def _restart_offline(settings: dict):
  """The same run, offline; the failed one's connection is torn down first
  (it still holds the run id)."""
  try:
    wandb.teardown()
  except Exception:  # pylint: disable=broad-except
    pass  # a dead wandb-core cannot be torn down; its successor starts anyway
  return _start_run('offline', settings)


def _one_line(error) -> str:
  return f'{type(error).__name__}: ' + ' '.join(str(error).split())[:300]


class MetricWriter:
  """Appends metrics to metrics.jsonl and logs them to W&B.

  Only one process writes (`active`) and starts the W&B run; the others'
  writes are no-ops, so the training loop reads the same on every process.
  If W&B fails mid-run, the run goes on offline (and without W&B if even
  that fails): metrics.jsonl always gets every record.
  """

  def __init__(self, workdir: str, wandb_config, config_dict: dict,
               start_step: int = 0, active: bool = True,
               environment: dict | None = None):
    self._workdir = workdir
    self._file = self._wandb_run = None
    if not active:
      return
    path = os.path.join(workdir, METRICS_FILE)
    kept = _drop_records_after(path, start_step)
    # The wall time of the run up to its checkpoint, then this process's.
    self._started = time.monotonic() - max(
        [r[WALL_TIME] for r in kept if isinstance(r.get(WALL_TIME), float)],
        default=0.0)
    self._best_key = f"val/{config_dict.get('best_metric', 'top1')}"
    self._best = None
    for record in kept:
      self._track_best(record)
    self._file = open(path, 'a')
    self._wandb_run = init_wandb(wandb_config, workdir, config_dict, 'train',
                                 environment)
    self._wandb_settings = _settings(wandb_config, workdir, config_dict,
                                     'train', environment)
    self._update_summary()

  def _track_best(self, record: dict) -> bool:
    """Whether `record` holds a new best validation `best_metric`."""
    value = record.get(self._best_key)
    if not isinstance(value, (int, float)) or (
        self._best is not None and value <= self._best[1]):
      return False
    self._best = (record['step'], value)
    return True

  def _update_summary(self) -> None:
    if self._wandb_run is not None and self._best is not None:
      step, value = self._best
      self._wandb_run.summary.update(
          {BEST_PREFIX + self._best_key: value, BEST_STEP: step})

  def write(self, step: int, metrics: dict) -> None:
    if self._file is None:
      return
    record = {'step': int(step), **{k: _to_python(v) for k, v in metrics.items()},
              WALL_TIME: round(time.monotonic() - self._started, 3)}
    self._file.write(json.dumps(record) + '\n')
    self._file.flush()
    if self._wandb_run is None:
      return
    improved = self._track_best(record)
    try:
      self._wandb_run.log(record)
      if improved:
        self._update_summary()
    except Exception as e:  # a dead wandb-core raises ConnectionResetError
      self._wandb_run = self._offline_after(e, step)
      if self._wandb_run is not None:
        self._wandb_run.log(record)
        self._update_summary()

  def _offline_after(self, error, step: int):
    logging.warning('W&B failed at step %d (%s): logging offline from here; '
                    'upload later with `wandb sync %s/wandb`.', step,
                    _one_line(error), self._workdir)
    try:
      return _restart_offline(self._wandb_settings)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('W&B offline failed too (%s): metrics go to %s only.',
                      _one_line(e), METRICS_FILE)
      return None

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._wandb_run is not None:
      try:
        self._wandb_run.finish()
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('W&B could not finish the run (%s).', _one_line(e))


def read_records(workdir: str) -> list:
  """The records of WORKDIR/metrics.jsonl ([] if none); a line that is not
  a whole record (a run killed mid-write) is left out."""
  records = []
  try:
    with open(os.path.join(workdir, METRICS_FILE)) as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:
          continue
        if isinstance(record, dict) and 'step' in record:
          records.append(record)
  except FileNotFoundError:
    pass
  return records


def _drop_records_after(path: str, step: int) -> list:
  """A resumed run repeats the steps after its checkpoint: drop their old
  records so each step is recorded once; returns the records kept. A line
  that is not a whole record (a write cut short by a crash or a full disk)
  is dropped with a warning; the file is rewritten atomically."""
  if not os.path.exists(path):
    return []
  kept, records = [], []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        keep = record['step'] <= step
      except (ValueError, TypeError, KeyError):
        logging.warning('%s: line %d is not a whole record (a write cut '
                        'short?); dropped.', path, number)
        continue
      if keep:
        kept.append(line if line.endswith('\n') else line + '\n')
        records.append(record)
  atomic.write_text(path, ''.join(kept))
  return records


def _to_python(value):
  return value.item() if hasattr(value, 'item') else value
