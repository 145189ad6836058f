"""Progress: a bar on a terminal, plain lines (or nothing) in a log file."""

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios

from helpers import REPO
import image_trees
from skinjax import progress


def _count(phase_file, monkeypatch, interval, steps=3):
  monkeypatch.setenv(progress.INTERVAL_VARIABLE, interval)
  with open(phase_file, 'w') as f:
    for _ in progress.bar(range(steps), desc='decoding photos', unit='photo',
                          file=f):
      pass
  with open(phase_file, newline='') as f:
    return f.read()


def test_a_log_file_gets_whole_lines_at_most_every_interval(tmp_path,
                                                            monkeypatch):
  written = _count(tmp_path / 'every_time.log', monkeypatch, '0')
  assert '\r' not in written and '\x1b' not in written
  lines = written.splitlines()
  assert [line.split(' [')[0] for line in lines] == [
      f'decoding photos: {n}/3 photo' for n in range(4)]
  # The default: a phase shorter than the interval leaves no line at all.
  assert _count(tmp_path / 'quiet.log', monkeypatch, '') == ''


def _run_on_a_terminal(args, **kwargs) -> tuple:
  """(exit status, what `args` wrote to stderr, a pseudo-terminal)."""
  leader, follower = os.openpty()
  # 24 rows of 100 columns, as a terminal window reports its size.
  fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower,
                          **kwargs)
  os.close(follower)
  seen = b''
  while select.select([leader], [], [], 300)[0]:
    try:
      chunk = os.read(leader, 65536)
    except OSError:  # EIO: every holder of the terminal has closed it
      break
    if not chunk:
      break
    seen += chunk
  os.close(leader)
  proc.communicate(timeout=60)
  return proc.returncode, seen.decode(errors='replace')


def test_preparing_a_collection_shows_a_bar_on_a_terminal(tmp_path):
  """The decoding bar redraws in place (carriage returns) on a terminal;
  tests/test_datasets.py's killed-preparation test checks the log side."""
  clinic = tmp_path / 'clinic'
  image_trees.write_class_tree(str(clinic), {'': {'Acne': 4, 'Hives': 4}})
  code, seen = _run_on_a_terminal(
      [sys.executable, '-m', 'tests.prepare_collection',
       str(tmp_path / 'tfds'), str(clinic)], cwd=REPO)
  assert code == 0, seen[-3000:]
  assert 'decoding photos' in seen and '8/8' in seen
  assert '\r' in seen
  for unactionable in ('Variant folder', 'custom data configuration'):
    assert unactionable not in seen
