"""Where metrics go: WORKDIR/metrics.jsonl always, Weights & Biases by config.

The W&B run id is kept in WORKDIR/wandb_run_id so that a resumed run, and
the evaluation of its checkpoints, continue the same W&B run.
"""

import json
import netrc
import os
import secrets
import string
from urllib import parse

from absl import logging
import wandb

RUN_ID_FILE = 'wandb_run_id'
METRICS_FILE = 'metrics.jsonl'


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


def init_wandb(wandb_config, workdir: str, config_dict: dict):
  """Starts or resumes the W&B run of `workdir`; None when disabled."""
  mode = wandb_config.mode
  if mode == 'disabled':
    return None
  if mode == 'online' and not has_wandb_credentials():
    logging.warning('No W&B API key configured: logging offline. Upload later '
                    'with `wandb sync %s/wandb`.', workdir)
    mode = 'offline'
  id_path = os.path.join(workdir, RUN_ID_FILE)
  if os.path.exists(id_path):
    with open(id_path) as f:
      run_id = f.read().strip()
  else:
    run_id = ''.join(secrets.choice(string.ascii_lowercase + string.digits)
                     for _ in range(8))
    with open(id_path, 'w') as f:
      f.write(run_id)
  run = wandb.init(project=wandb_config.project,
                   entity=wandb_config.entity or None,
                   name=wandb_config.name or None,
                   tags=list(wandb_config.tags), mode=mode, id=run_id,
                   resume='allow', dir=workdir, config=config_dict)
  # Our own step axis: a resumed run re-logs steps after its checkpoint,
  # which W&B would drop if they were passed as its monotonic `step`.
  run.define_metric('step')
  run.define_metric('*', step_metric='step')
  return run


class MetricWriter:
  """Appends metrics to metrics.jsonl and logs them to W&B.

  Only one process writes (`active`); the others' writes are no-ops, so the
  training loop reads the same on every process.
  """

  def __init__(self, workdir: str, wandb_run, start_step: int = 0,
               active: bool = True):
    self._wandb_run = wandb_run
    self._file = None
    if active:
      path = os.path.join(workdir, METRICS_FILE)
      _drop_records_after(path, start_step)
      self._file = open(path, 'a')

  def write(self, step: int, metrics: dict) -> None:
    if self._file is None:
      return
    record = {'step': int(step), **{k: _to_python(v) for k, v in metrics.items()}}
    self._file.write(json.dumps(record) + '\n')
    self._file.flush()
    if self._wandb_run is not None:
      self._wandb_run.log(record)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._wandb_run is not None:
      self._wandb_run.finish()


def _drop_records_after(path: str, step: int) -> None:
  """A resumed run repeats the steps after its checkpoint: drop their old
  records so each step is recorded once."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [line for line in f
             if line.strip() and json.loads(line)['step'] <= step]
  with open(path + '.tmp', 'w') as f:
    f.writelines(lines)
  os.replace(path + '.tmp', path)


def _to_python(value):
  return value.item() if hasattr(value, 'item') else value
