"""Read PyTorch's legacy (non-zip) `.pth` checkpoints into numpy, without torch and safely.

The legacy format is a stream of pickles: magic number, protocol version, system info, the state
dict (whose tensors point at storages through persistent ids), the list of storage keys, then each
storage's raw bytes (an int64 element count, then the elements, little-endian).

`pickle.load` on an untrusted file runs arbitrary code (any global can be called while loading).
`_SafeUnpickler` resolves only the handful of globals this format needs and refuses everything
else with `UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for a global outside the allow-list; nothing from it was called."""


class _StorageType:
    """Stands in for torch.FloatStorage & co: only its dtype matters."""

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes follow the pickle; filled in once they are read."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None


class _TensorRef:
    """What `_rebuild_tensor_v2` returns here: enough to slice the storage later."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        if not self.size:
            return flat[self.offset].copy()
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=self.size, strides=[s * item for s in self.stride]
        )
        return np.array(view)  # copy: detach from the shared storage buffer


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None, *a):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, hooks=None, *a):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _Storage] | None = None):
        super().__init__(file)
        self.storages = storages if storages is not None else {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(
            f"refusing global {module}.{name}: a legacy PyTorch weights file only needs "
            "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage. "
            "This file is not a plain state dict (or was tampered with); do not load it."
        )

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise UnsafePickleError(f"persistent id names {stype!r}, not a torch storage type")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(stype.dtype, int(numel))
        return self.storages[key]


def _load_one(f: BinaryIO, storages: dict | None = None) -> tuple[Any, dict]:
    up = _SafeUnpickler(f, storages)
    return up.load(), up.storages


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a legacy-format `.pth` state dict as {name: numpy array}; refuses unsafe pickles."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise pickle.UnpicklingError(
                f"{path}: a zip-format (torch >= 1.6) checkpoint; only the legacy format is read"
            )
        f.seek(0)
        magic, _ = _load_one(f)
        if magic != _MAGIC:
            raise pickle.UnpicklingError(f"{path}: not a legacy PyTorch file (bad magic number)")
        _load_one(f)  # protocol version
        _load_one(f)  # sys info: endianness, type sizes
        state, storages = _load_one(f)
        keys, _ = _load_one(f)
        for key in keys:
            st = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * st.dtype.itemsize
            buf = f.read(nbytes)
            if numel != st.numel or len(buf) != nbytes:
                raise pickle.UnpicklingError(f"{path}: storage {key} is truncated or inconsistent")
            st.data = np.frombuffer(buf, dtype=st.dtype.newbyteorder("<"))
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"{path}: holds {type(state).__name__}, not a state dict")
    return {k: v.to_numpy() if isinstance(v, _TensorRef) else v for k, v in state.items()}
