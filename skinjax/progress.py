"""Progress of the phases a user waits through, in one style for every
command: tqdm's bar on stderr when stderr is a terminal; otherwise (a log
file, a pipe, SLURM's output) a plain line at most every
SKINJAX_PROGRESS_INTERVAL seconds (default 30) and none at all for a phase
shorter than that, so logs hold a few readable lines rather than a bar's
redraws. Results and what a command is doing go to stdout; progress, like
warnings, to stderr.
"""

import os
import sys
import time

import tqdm

INTERVAL_VARIABLE = 'SKINJAX_PROGRESS_INTERVAL'
DEFAULT_INTERVAL = 30.0


def on_terminal(stream=None) -> bool:
  """Whether `stream` (stderr by default) is a terminal, where bars go."""
  stream = sys.stderr if stream is None else stream
  return hasattr(stream, 'isatty') and stream.isatty()


def bar(iterable=None, *, total=None, desc=None, unit='it', initial=0,
        active: bool = True, file=None) -> tqdm.tqdm:
  """A tqdm bar over `iterable` (or updated by hand) on stderr, or its plain
  lines where stderr is not a terminal; `active=False` shows nothing (the
  processes other than 0)."""
  file = sys.stderr if file is None else file
  common = dict(total=total, desc=desc, unit=unit, initial=initial,
                disable=not active, file=file)
  if on_terminal(file):
    # A terminal that reports no size (a bare pseudo-terminal) gets 80x20
    # rather than no bar (tqdm hides bars below its last row).
    width = (dict(dynamic_ncols=True) if _columns(file) else
             dict(ncols=80, nrows=20))
    return tqdm.tqdm(iterable, mininterval=0.5, **width, **common)
  return _Lines(iterable, bar_format='{desc}: {n_fmt}/{total_fmt} {unit} '
                '[{elapsed}<{remaining}, {rate_fmt}]{postfix}',
                interval=_interval(), **common)


def pace(elapsed: float, done: int, left: int) -> str:
  """' (MM:SS for N so far, about MM:SS left)' after `done` of the units
  a phase counts took `elapsed` seconds and `left` remain; '' before any:
  the progress of phases whose units print their own bars (a sweep's
  trials)."""
  if not done:
    return ''
  clock = tqdm.tqdm.format_interval
  return (f' ({clock(elapsed)} for {done} so far, about '
          f'{clock(elapsed / done * left)} left)')


def _columns(stream) -> int:
  try:
    return os.get_terminal_size(stream.fileno()).columns
  except (AttributeError, OSError, ValueError):
    return 0


def _interval() -> float:
  value = os.environ.get(INTERVAL_VARIABLE, '')
  try:
    return max(0.0, float(value)) if value else DEFAULT_INTERVAL
  except ValueError:
    return DEFAULT_INTERVAL


class _Lines(tqdm.tqdm):
  """tqdm for a log file: its line, whole, at most every `interval` seconds
  and at the end of a phase that wrote one; no carriage returns, no
  clearing."""

  def __init__(self, *args, interval: float, **kwargs):
    self._interval = interval
    self._last_line = time.monotonic()
    self._wrote = None  # the count last written, None before a line
    self._closing = False
    super().__init__(*args, mininterval=interval, **kwargs)

  def display(self, msg=None, pos=None):
    now = time.monotonic()
    if self._closing:
      due = self._wrote is not None and self._wrote != self.n
    else:
      due = now - self._last_line >= self._interval
    if msg == '' or not due:
      return False
    self.fp.write((self.__str__() if msg is None else msg) + '\n')
    self.fp.flush()
    self._last_line, self._wrote = now, self.n
    return True

  def clear(self, nolock=False):
    del nolock  # a written line stays

  def close(self):
    if not getattr(self, 'disable', True):
      self._closing = True
      self._ema_dt = lambda: None  # the final line gives the overall rate
      self.display()
      self.leave = False  # tqdm's own close would add a blank line
    super().close()
