"""The .pth reader on crafted files: tensors whose views leave their storage,
truncated storages and malformed records are refused, never read."""

import io
import pickle
import struct

import numpy as np
import pytest

from skinjax.models import torch_checkpoint

_MAGIC = 0x1950a86a20f9469cfc6c


def _fragment(value) -> bytes:
  """Pickle opcodes that push `value` (an int, str, bool or tuple of them)."""
  return pickle.dumps(value, protocol=2)[2:-1]


def _legacy_pth(tensors: dict, storages: dict, truncate: int = 0) -> bytes:
  """A file in torch.save's legacy format, written without torch.

  `tensors` maps names to (storage key, offset, size, stride); `storages`
  maps keys to float32 arrays.
  """
  out = io.BytesIO()
  for header in (_MAGIC, 1001, {'little_endian': True}):
    pickle.dump(header, out, protocol=2)
  state = [b'\x80\x02}(']  # PROTO 2, EMPTY_DICT, MARK
  for name, (key, offset, size, stride) in tensors.items():
    state += [_fragment(name), b'ctorch._utils\n_rebuild_tensor_v2\n(',
              b'(', _fragment('storage'), b'ctorch\nFloatStorage\n',
              _fragment(key), _fragment('cpu'),
              _fragment(len(storages[key])), b'tQ',  # TUPLE, BINPERSID
              _fragment(offset), _fragment(size), _fragment(stride),
              _fragment(False), b'tR']  # TUPLE, REDUCE
  state.append(b'u.')  # SETITEMS, STOP
  out.write(b''.join(state))
  pickle.dump(list(storages), out, protocol=2)
  for array in storages.values():
    out.write(struct.pack('<q', len(array)))
    out.write(np.asarray(array, np.float32).tobytes())
  data = out.getvalue()
  return data[:len(data) - truncate]


def _load(tmp_path, data):
  path = tmp_path / 'weights.pth'
  path.write_bytes(data)
  return torch_checkpoint.load_state_dict(str(path))


def test_a_well_formed_file_reads_back(tmp_path):
  storage = np.arange(12, dtype=np.float32)
  state = _load(tmp_path, _legacy_pth(
      {'w': ('0', 0, (3, 4), (4, 1)), 'wt': ('0', 1, (2, 2), (1, 4))},
      {'0': storage}))
  np.testing.assert_array_equal(state['w'], storage.reshape(3, 4))
  np.testing.assert_array_equal(state['wt'], [[1, 5], [2, 6]])


@pytest.mark.parametrize('offset, size, stride, reason', [
    (0, (38,), (1,), 'reaches element 37 of a storage of 1'),
    (5, (1,), (1,), 'reaches element 5'),
    (0, (2, 2), (1, 100), 'reaches element 101'),
    (0, (8192, 8192), (0, 0), 'stride 0 in strides'),
    (0, (1, 2), (0, 0), 'stride 0 in strides'),
    (-1, (1,), (1,), 'malformed'),
    (0, (2,), (-1,), 'malformed'),
    (0, (2, 2), (1,), 'malformed'),
    (0, 'ab', (1,), 'malformed'),
])
def test_a_view_outside_its_storage_is_refused_naming_the_tensor(
    tmp_path, offset, size, stride, reason):
  data = _legacy_pth({'bad': ('0', offset, size, stride)},
                     {'0': np.ones(1, np.float32)})
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match=f"weights.pth: tensor 'bad': .*{reason}"):
    _load(tmp_path, data)


def test_overlapping_strides_cannot_make_more_elements_than_stored(tmp_path):
  """Strides (1, 1) stay inside 3 stored elements yet ask for 4; scaled up,
  a few KiB would become gigabytes."""
  data = _legacy_pth({'bad': ('0', 0, (2, 2), (1, 1))},
                     {'0': np.ones(3, np.float32)})
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match="tensor 'bad': shape .* has more elements than the "
                     '3 its storage holds'):
    _load(tmp_path, data)


def test_a_truncated_storage_is_refused(tmp_path):
  data = _legacy_pth({'w': ('0', 0, (4,), (1,))},
                     {'0': np.ones(4, np.float32)}, truncate=3)
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match="storage '0' is truncated"):
    _load(tmp_path, data)


def test_a_file_cut_inside_its_pickles_is_refused(tmp_path):
  data = _legacy_pth({'w': ('0', 0, (4,), (1,))},
                     {'0': np.ones(4, np.float32)})
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match='weights.pth'):
    _load(tmp_path, data[:60])
