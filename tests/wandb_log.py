"""Reads an offline W&B run from its .wandb file: history rows, and what each
wandb.init recorded (name, group, job type, tags, config, summary).

wandb 0.31 ships no Python reader for its transaction log, so this walks the
log's framing (LevelDB log format: 32 KiB blocks of CRC-checked chunks after
a 7-byte W&B header) and decodes every record with wandb's own protobuf
`Record` message.
"""

import glob
import json
import os
import struct
import zlib

from wandb.proto import wandb_internal_pb2

_BLOCK = 32 * 1024
_HEADER = 7  # crc32 (4), length (2), chunk type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path):
  with open(path, 'rb') as f:
    data = f.read()
  ident, magic, version = struct.unpack('<4sHB', data[:7])
  assert (ident, magic, version) == (b':W&B', 0xBEE1, 0), path
  pos, pending = 7, b''
  while pos + _HEADER <= len(data):
    if _BLOCK - pos % _BLOCK < _HEADER:  # block trailer padding
      pos += _BLOCK - pos % _BLOCK
      continue
    checksum, length, kind = struct.unpack('<IHB', data[pos:pos + _HEADER])
    chunk = data[pos + _HEADER:pos + _HEADER + length]
    if len(chunk) < length:
      return  # the tail a killed run was writing
    pos += _HEADER + length
    if kind == 0 and length == 0:
      continue
    assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, path
    pending += chunk
    if kind in (_FULL, _LAST):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      pending = b''
      yield record


def history(run_dir: str) -> list:
  """Logged rows (dicts of key -> value) of the runs in a `wandb/` folder."""
  rows = []
  for path in sorted(glob.glob(os.path.join(run_dir, '*', '*.wandb'))):
    if os.path.islink(os.path.dirname(path)):  # wandb/latest-run
      continue
    for record in _records(path):
      if record.WhichOneof('record_type') == 'history':
        rows.append({item.key or '/'.join(item.nested_key):
                     json.loads(item.value_json)
                     for item in record.history.item})
  return rows


def runs(run_dir: str) -> list:
  """What each wandb.init into a `wandb/` folder recorded, oldest first:
  dicts of id, name, group, job_type, tags, notes, config ({key: value})
  and summary ({key: last value}). A start killed by SIGKILL may have left
  no record at all (wandb-core had not written them yet): it is left out."""
  found = []
  for path in sorted(glob.glob(os.path.join(run_dir, '*', '*.wandb'))):
    if os.path.islink(os.path.dirname(path)):  # wandb/latest-run
      continue
    run, summary = None, {}
    for record in _records(path):
      kind = record.WhichOneof('record_type')
      if kind == 'run':
        run = record.run
      elif kind == 'summary':
        summary.update({item.key or '/'.join(item.nested_key):
                        json.loads(item.value_json)
                        for item in record.summary.update})
    if run is None:
      continue
    found.append({
        'id': run.run_id, 'name': run.display_name, 'group': run.run_group,
        'job_type': run.job_type, 'tags': list(run.tags), 'notes': run.notes,
        'config': {item.key or '/'.join(item.nested_key):
                   json.loads(item.value_json) for item in run.config.update},
        'summary': summary})
  return found
