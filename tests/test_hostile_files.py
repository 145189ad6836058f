"""A hostile collection, prepared and scored with peak memory measured:
pixel and zip bombs, lying and broken archives, truncated, polyglot and
disguised files, high-bit images and a link loop. Nothing crashes, every bad
file is reported with its reason, every photo is kept, and memory stays
under the figures the README states.

  pytest -m slow -s tests/test_hostile_files.py   # prints the measured peaks
"""

import json
import os

import pytest

from helpers import run_module
import image_trees

# What the README states: each decoding worker, and the whole preparation.
WORKER_MIB = 512
TOTAL_MIB = 2048


def _measure(*args):
  result = run_module('tests.peak_memory', list(args))
  assert result.returncode == 0, result.stderr[-3000:]
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  print(f"\n{args[0]}: peak RSS {measured['peak_rss_mib']} MiB, largest "
        f"worker {measured['largest_worker_peak_rss_mib']} MiB, "
        f"{measured['workers']} workers")
  return measured


def _reasons(entries):
  return {os.path.basename(e['file']): e['reason'] for e in entries}


@pytest.mark.slow
def test_a_hostile_collection_is_prepared_and_scored_in_bounded_memory(
    tmp_path):
  root = tmp_path / 'hostile'
  kept, listing_refuses, decoding_refuses = image_trees.hostile_collection(
      str(root))

  prepared = _measure('prepare', str(root), str(tmp_path / 'tfds'))
  with open(prepared['report']) as f:
    report = json.load(f)
  assert sum(report['examples'].values()) == kept + 1  # + inside.jpg
  assert not report['duplicates']
  for found, expected in ((_reasons(report['files_not_listed']),
                           listing_refuses),
                          (_reasons(report['skipped']), decoding_refuses)):
    assert sorted(found) == sorted(expected)
    for name, reason in expected.items():
      assert found[name].startswith(reason), (name, found[name])
  assert prepared['largest_worker_peak_rss_mib'] < WORKER_MIB
  assert (prepared['peak_rss_mib'] + prepared['workers'] *
          prepared['largest_worker_peak_rss_mib']) < TOTAL_MIB

  scored = _measure('predict', str(root))
  assert len(scored['loaded']) == kept
  found = _reasons({'file': f, 'reason': r}
                   for f, r in scored['failed'].items())
  assert sorted(found) == sorted(decoding_refuses)
  for name, reason in decoding_refuses.items():
    assert found[name].startswith(reason), (name, found[name])
  assert scored['peak_rss_mib'] < TOTAL_MIB
