"""tltk.export and tltk.parity: TF-Serving layout, signatures, versions, fresh-process parity."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tltk.export as export_module
import tltk.io as io_module
import tltk.parity as parity_module
from tltk.data.decode import decode_image, resize_image
from tltk.export import ExportError, export_image_model, next_version
from tltk.parity import ParityError, check_parity

SIZE = 32
CLASSES = ["cat", "dog", "fox"]


def tiny_model(units: int = 3, activation: str = "softmax") -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(x))


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def sample_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 50), (32, 32)]]
    return [
        encode(rgb[0]),
        encode(rgb[1], "JPEG"),
        encode(rng.integers(0, 256, (24, 30), dtype=np.uint8)),  # gray PNG
        encode(rng.integers(0, 256, (36, 20, 4), dtype=np.uint8)),  # RGBA PNG
    ]


def keras_scores(model: keras.Model, images: list[bytes]) -> np.ndarray:
    batch = tf.stack([decode_image(tf.constant(b), SIZE) for b in images])
    return model.predict(batch, verbose=0)


def tree(folder) -> dict:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One classification export with parity, the child process call recorded."""
    root = tmp_path_factory.mktemp("export")
    model, images = tiny_model(), sample_images()
    calls = []
    real_run = subprocess.run

    def spy(*args, **kwargs):
        calls.append(result := real_run(*args, **kwargs))
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parity_module.subprocess, "run", spy)
        result = export_image_model(
            model,
            class_names=CLASSES,
            image_size=SIZE,
            export_root=root,
            name="pets",
            card={"metrics": {"accuracy": 0.5}, "recipe": {"name": "pets"}},
            parity_inputs=images,
        )
    return {"root": root, "model": model, "images": images, "result": result, "calls": calls}


def test_next_version(tmp_path):
    assert next_version(tmp_path / "missing") == 1
    for name in ["1", "3", "notes", ".4.abc.tmp"]:
        (tmp_path / name).mkdir()
    assert next_version(tmp_path) == 4


def test_layout_card_and_parity(exported):
    result = exported["result"]
    path = exported["root"] / "pets" / "1"
    assert result.path == path and result.version == 1
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    extra = path / "assets.extra"
    assert (extra / "labels.txt").read_text() == "cat\ndog\nfox\n"
    meta = json.loads((extra / "tltk.json").read_text())
    assert meta["kind"] == "image" and meta["task"] == "classification"
    assert meta["class_names"] == CLASSES and meta["image_size"] == SIZE
    assert not [p for p in (exported["root"] / "pets").iterdir() if p.name != "1"]  # no temp

    card = json.loads((extra / "model_card.json").read_text())
    assert card["metrics"] == {"accuracy": 0.5} and card["recipe"] == {"name": "pets"}
    assert card["libraries"]["tensorflow"] == tf.__version__
    assert card["libraries"]["keras"] == keras.__version__
    assert set(card["signatures"]) == {"serving_default", "serve_images"}
    assert "image_bytes" in card["signatures"]["serving_default"]["inputs"]
    assert card["exported_at"]
    markdown = (extra / "model_card.md").read_text()
    assert (
        "# pets (version 1)" in markdown
        and "Parity check passed: max |SavedModel - Keras model| = " in markdown
    )
    assert (
        "- accuracy: 0.5" in markdown
        and "| `serving_default` | input | `image_bytes` |" in markdown
    )

    parity = result.parity
    assert parity == card["parity"]
    assert parity["passed"] and parity["n"] == 4 and parity["max_abs_diff"] <= 1e-4
    assert parity["tolerance"] == 1e-4
    # The child really ran: one fresh interpreter, TensorFlow-only, exited cleanly.
    (call,) = exported["calls"]
    assert call.args[:2] == [sys.executable, "-c"] and call.returncode == 0
    assert "tensorflow" in call.args[2] and "tltk" not in call.args[2]


def test_signatures_outputs_match_keras(exported):
    loaded = tf.saved_model.load(str(exported["result"].path))
    assert {"serving_default", "serve_images"} <= set(loaded.signatures)
    images, model = exported["images"], exported["model"]
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    assert set(out) == {"scores", "classes", "top_class", "top_score"}
    assert out["scores"].dtype == tf.float32 and out["scores"].shape == (4, 3)
    assert out["classes"].dtype == tf.string and out["classes"].shape == (4, 3)
    assert out["top_class"].shape == (4,) and out["top_score"].shape == (4,)
    expected = keras_scores(model, images)  # includes the gray and the RGBA PNG
    np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)
    assert [c.decode() for c in out["classes"].numpy()[0]] == CLASSES
    assert [c.decode() for c in out["top_class"].numpy()] == [
        CLASSES[i] for i in expected.argmax(-1)
    ]
    np.testing.assert_allclose(out["top_score"].numpy(), expected.max(-1), atol=1e-5)

    pixels = np.random.default_rng(1).uniform(0, 255, (2, 45, 27, 3)).astype("float32")
    out = loaded.signatures["serve_images"](images=tf.constant(pixels))
    expected = model.predict(resize_image(tf.constant(pixels), SIZE), verbose=0)
    np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)
    assert out["classes"].shape == (2, 3)


def test_versions_are_never_overwritten(exported):
    root, model = exported["root"], exported["model"]
    before = tree(root / "pets" / "1")
    second = export_image_model(
        model, class_names=CLASSES, image_size=SIZE, export_root=root, name="pets"
    )
    assert second.version == 2 and second.path == root / "pets" / "2" and second.parity is None
    assert tree(root / "pets" / "1") == before
    snapshot = tree(root)
    with pytest.raises(FileExistsError, match=r"pets/1 already exists"):
        export_image_model(
            model, class_names=CLASSES, image_size=SIZE, export_root=root, name="pets", version=1
        )
    assert tree(root) == snapshot


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "card_markdown", broken)
    with pytest.raises(OSError, match="disk full"):
        export_image_model(
            tiny_model(), class_names=CLASSES, image_size=SIZE, export_root=tmp_path, name="m"
        )
    assert list((tmp_path / "m").iterdir()) == []


def test_failed_parity_leaves_nothing(tmp_path, monkeypatch):
    real = parity_module.reference_outputs
    monkeypatch.setattr(parity_module, "reference_outputs", lambda *a: real(*a) + 0.01)
    with pytest.raises(ParityError, match=r"FAILED: max .* = 0\.01.*nothing was exported"):
        export_image_model(
            tiny_model(),
            class_names=CLASSES,
            image_size=SIZE,
            export_root=tmp_path,
            name="m",
            parity_inputs=sample_images()[:1],
        )
    assert list((tmp_path / "m").iterdir()) == []


def test_parity_child_refuses_library_code(exported):
    with pytest.raises(ParityError, match="imported tltk"):
        check_parity(
            exported["result"].path,
            exported["images"][:1],
            lambda batch: {"scores": np.zeros((1, 3))},
            input_name="image_bytes",
            output_key="scores",
            imports=("tensorflow", "tltk"),
        )


def test_bad_arguments_write_nothing(tmp_path):
    model = tiny_model()
    cases = [
        ({"class_names": ["a", "b"]}, "3 scores but 2 class names"),
        ({"class_names": CLASSES, "task": "detection"}, "task 'detection'"),
        ({"class_names": CLASSES, "version": 0}, "positive integer"),
        ({"class_names": CLASSES, "card": {"parity": 1}}, "written by the export"),
        ({"class_names": CLASSES, "card": {"image_size": 1}}, "written by the export"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            export_image_model(model, image_size=SIZE, export_root=tmp_path, name="m", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_multilabel_and_regression(tmp_path, task):
    model = tiny_model(1, None) if task == "regression" else tiny_model(3, "sigmoid")
    names = [] if task == "regression" else CLASSES
    result = export_image_model(
        model, class_names=names, image_size=SIZE, export_root=tmp_path, name="m", task=task
    )
    images = sample_images()
    signature = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    out = signature(image_bytes=tf.constant(images))
    expected = keras_scores(model, images)
    if task == "regression":
        assert set(out) == {"prediction"} and out["prediction"].shape == (4,)
        np.testing.assert_allclose(out["prediction"].numpy(), expected[:, 0], atol=1e-5)
        assert not (result.path / "assets.extra" / "labels.txt").exists()
    else:
        np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)
        assert not np.allclose(out["scores"].numpy().sum(-1), 1.0)  # sigmoids, not a softmax
    meta = json.loads((result.path / "assets.extra" / "tltk.json").read_text())
    assert meta["task"] == task


# --------------------------------------------------------------------------- robustness


def export(root, **kwargs):
    return export_image_model(
        tiny_model(), class_names=CLASSES, image_size=SIZE, export_root=root, name="m", **kwargs
    )


def card_version(path) -> int:
    return json.loads((path / "assets.extra" / "model_card.json").read_text())["version"]


def test_export_is_readable_by_other_users_under_umask_022(tmp_path):
    previous = os.umask(0o022)
    try:
        result = export(tmp_path)
    finally:
        os.umask(previous)
    modes = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
        for p in [tmp_path / "m", *sorted((tmp_path / "m").rglob("*"))]
    }
    assert "m/1/assets.extra/labels.txt" in modes and "m/1/saved_model.pb" in modes
    wrong = {
        p: oct(m) for p, m in modes.items() if m != (0o755 if Path(tmp_path, p).is_dir() else 0o644)
    }
    assert not wrong
    assert result.version == 1


def test_stale_temporaries_are_cleaned_and_live_ones_kept(tmp_path):
    root = tmp_path / "m"
    finished = root / "1"
    finished.mkdir(parents=True)
    (finished / "saved_model.pb").write_bytes(b"finished")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = io_module._HOST
    stale = root / f".2.{host}-{dead.pid}.0a1b2c3d.tmp"
    alive = root / f".2.{host}-{live.pid}.0a1b2c3d.tmp"
    try:
        for folder in (stale, alive):
            (folder / "variables").mkdir(parents=True)
        result = export(tmp_path)
        assert result.removed_temporaries == [stale]
        assert sorted(p.name for p in root.iterdir()) == sorted(["1", "2", alive.name])
        assert (finished / "saved_model.pb").read_bytes() == b"finished"
        assert (root / "2" / "saved_model.pb").is_file() and alive.is_dir()
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("requested", [None, 5])
def test_version_taken_while_exporting(tmp_path, monkeypatch, requested):
    """Another exporter publishes the same number first: an automatic version moves on to the
    next number (its card says so), a requested one is refused; theirs is left alone."""
    real = export_module.build_card
    taken = []

    def competitor_finishes_first(name, version, *args):
        if not taken:
            other = tmp_path / "m" / str(version)
            other.mkdir()
            (other / "saved_model.pb").write_bytes(b"theirs")
            taken.append(version)
        return real(name, version, *args)

    monkeypatch.setattr(export_module, "build_card", competitor_finishes_first)
    if requested is None:
        result = export(tmp_path)
        assert taken == [1] and result.version == 2 and card_version(result.path) == 2
    else:
        with pytest.raises(FileExistsError, match=r"m/5 already exists; versions are never"):
            export(tmp_path, version=requested)
    assert (tmp_path / "m" / str(taken[0]) / "saved_model.pb").read_bytes() == b"theirs"
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]


def test_disk_full_mid_export_leaves_no_version(tmp_path, monkeypatch):
    """The SavedModel is written; then a write of assets.extra/ hits a full disk."""
    writes = []

    def full(fd):
        writes.append(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io_module.os, "fsync", full)
    with pytest.raises(
        ExportError, match=r"labels\.txt .*No space left on device\. Nothing was exported"
    ) as e:
        export(tmp_path)
    assert e.value.__cause__.errno == errno.ENOSPC and writes
    assert list((tmp_path / "m").iterdir()) == []


_READ_ONLY_CHILD = """
import sys
sys.path[:0] = sys.argv[2:]
from test_export import export
from tltk.export import ExportError
try:
    export(sys.argv[1])
except ExportError as e:
    print("ExportError:", e)
"""


def _drop_root_write_override() -> None:
    """In the child: root ignores permission bits unless it loses CAP_DAC_OVERRIDE (and
    CAP_DAC_READ_SEARCH); drop both from the bounding set so the exec'd process lacks them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _has_capability(bit: int) -> bool:
    with open("/proc/self/status") as f:
        effective = next(line for line in f if line.startswith("CapEff:")).split()[1]
    return bool(int(effective, 16) >> bit & 1)


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True])
def test_read_only_export_root_is_a_clear_error(tmp_path, existing):
    if os.geteuid() == 0 and not _has_capability(8):  # CAP_SETPCAP, to drop the others
        pytest.skip("root without CAP_SETPCAP cannot give up its write override")
    root = tmp_path / "saved_models"
    (root / "m" if existing else root).mkdir(parents=True)
    for folder in (root / "m", root):
        if folder.exists():
            folder.chmod(0o555)
    tests, repo = Path(__file__).parent, Path(__file__).parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", _READ_ONLY_CHILD, str(root), str(tests), str(repo)],
        preexec_fn=_drop_root_write_override if os.geteuid() == 0 else None,
        capture_output=True,
        text=True,
        timeout=300,
    )
    root.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"could not create a folder in {root / 'm'}: Permission denied" in proc.stdout
    assert "Nothing was exported (no version folder was created)" in proc.stdout
    assert [p.name for p in root.iterdir()] == (["m"] if existing else [])
    assert not existing or list((root / "m").iterdir()) == []


def _publish_together(barrier: Path, publish):
    """`publish` once both exporters have reached it with the same number, before either
    renames (each leaves a file named after its process in `barrier`)."""

    def publish_together(tmp, final):
        (barrier / str(os.getpid())).touch()
        deadline = time.time() + 300
        while len(os.listdir(barrier)) < 2:
            assert time.time() < deadline, "the other exporter never reached the rename"
            time.sleep(0.01)
        return publish(tmp, final)

    return publish_together


_CONCURRENT_CHILD = """
import sys
from pathlib import Path
sys.path[:0] = sys.argv[3:]
import tltk.versions as versions
from test_export import _publish_together, export

versions.publish_directory = _publish_together(Path(sys.argv[2]), versions.publish_directory)
print("VERSION", export(sys.argv[1]).version)
"""


@pytest.mark.slow
def test_two_processes_exporting_one_name_get_two_versions(tmp_path, monkeypatch):
    """This process and a child export the same name at the same time."""
    import tltk.versions as versions_module

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    tests, repo = Path(__file__).parent, Path(__file__).parent.parent
    command = [sys.executable, "-c", _CONCURRENT_CHILD, str(tmp_path), str(barrier)]
    child = subprocess.Popen(
        [*command, str(tests), str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        publish = _publish_together(barrier, versions_module.publish_directory)
        monkeypatch.setattr(versions_module, "publish_directory", publish)
        mine = export(tmp_path).version
        out, err = child.communicate(timeout=300)
    finally:
        child.kill()  # only if this process's export failed: the child waits for it
    assert child.returncode == 0, err.decode()[-2000:]
    versions = sorted([mine, int(out.decode().split("VERSION")[1])])
    assert versions == [1, 2] and len(os.listdir(barrier)) == 2
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]
    for v in versions:
        path = tmp_path / "m" / str(v)
        assert card_version(path) == v
        assert {"serving_default", "serve_images"} <= set(tf.saved_model.load(str(path)).signatures)
