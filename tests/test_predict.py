"""tltk.predict: SavedModel-only prediction on files and folders, per-file errors, outputs."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from tltk.cli import main
from tltk.errors import PredictError
from tltk.export import export_image_model
from tltk.predict import load_exported, predict_images, predict_texts, write_predictions

SIZE = 16
COLORS = ["red", "green", "blue"]


def color_model(units: int = 3, activation: str | None = "softmax") -> keras.Model:
    """Mean RGB -> one logit per channel: a pure red image is `red` with a known score."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(units, activation=activation)
    outputs = dense(x)
    kernel = np.eye(3, units, dtype="float32") * 0.02
    dense.set_weights([kernel, np.zeros(units, "float32")])
    return keras.Model(inputs, outputs)


def softmax(logits):
    e = np.exp(np.asarray(logits) - np.max(logits))
    return e / e.sum()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    model = color_model()
    export_image_model(model, class_names=COLORS, image_size=SIZE, export_root=base, name="c")
    export_image_model(model, class_names=COLORS, image_size=SIZE, export_root=base, name="c")
    images = base / "images"
    (images / "nested").mkdir(parents=True)
    (images / ".hidden").mkdir()
    for name, rgb, mode in [
        ("red.png", (255, 0, 0), "RGB"),
        ("nested/blue.jpg", (0, 0, 255), "RGB"),
        ("rgba_green.png", (0, 255, 0, 128), "RGBA"),
        (".hidden/red.png", (255, 0, 0), "RGB"),
    ]:
        Image.new(mode, (20, 12), rgb).save(images / name)
    Image.new("L", (9, 9), 255).save(images / "gray.bmp")
    (images / "broken.png").write_bytes(b"not an image")
    (images / "notes.txt").write_text("ignored")
    return {"base": base, "images": images}


def test_load_exported_resolves_versions(setup):
    latest = load_exported(setup["base"] / "c")
    assert latest.path == setup["base"] / "c" / "2"
    assert latest.class_names == COLORS and latest.task == "classification"
    assert load_exported(setup["base"] / "c" / "1").path.name == "1"
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        load_exported(setup["images"])


def test_predict_folder_and_files(setup):
    images = setup["images"]
    exported = load_exported(setup["base"] / "c")
    results = predict_images(
        exported, [images, images / "red.png", images / "missing.png"], top_k=2, batch_size=2
    )
    by_input = {r["input"]: r for r in results}
    names = [r["input"] for r in results]
    folder = [str(images / n) for n in ["broken.png", "gray.bmp", "nested/blue.jpg"]]
    folder += [str(images / "red.png"), str(images / "rgba_green.png")]
    assert names == folder + [str(images / "red.png"), str(images / "missing.png")]

    red = by_input[str(images / "red.png")]["top"]
    assert [t["label"] for t in red] == ["red", "green"]  # top_k=2, best first
    np.testing.assert_allclose(red[0]["score"], softmax([5.1, 0, 0])[0], rtol=1e-5)
    assert by_input[str(images / "nested/blue.jpg")]["top"][0]["label"] == "blue"
    assert by_input[str(images / "rgba_green.png")]["top"][0]["label"] == "green"  # alpha dropped
    gray = by_input[str(images / "gray.bmp")]["top"]  # white gray: all channels equal
    np.testing.assert_allclose([t["score"] for t in gray], [1 / 3, 1 / 3], rtol=1e-5)

    assert "Unknown image file format" in by_input[str(images / "broken.png")]["error"]
    assert "No such file" in by_input[str(images / "missing.png")]["error"]


def test_write_predictions(setup, tmp_path, capsys):
    images = setup["images"]
    results = predict_images(setup["base"] / "c", [images / "red.png", images / "broken.png"])
    assert len(results[0]["top"]) == 3  # top_k=5 capped at K

    write_predictions(results, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == results

    write_predictions(results, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["input"] == str(images / "red.png") and rows[0]["label_1"] == "red"
    assert float(rows[0]["score_1"]) == pytest.approx(results[0]["top"][0]["score"], rel=1e-5)
    assert rows[0]["error"] == "" and rows[1]["label_1"] == ""
    assert rows[1]["error"].startswith("Unknown image file format")

    write_predictions(results, None)
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(str(images / "red.png")) and "red (" in table[0]
    assert "error: Unknown image file format" in table[1]

    with pytest.raises(ValueError, match=r"out\.txt.*unknown predictions format"):
        write_predictions(results, tmp_path / "out.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.json"]  # no temp files


def test_predict_regression(setup, tmp_path):
    export_image_model(
        color_model(1, None),
        class_names=[],
        image_size=SIZE,
        export_root=tmp_path,
        name="r",
        task="regression",
    )
    (result,) = predict_images(tmp_path / "r", [setup["images"] / "red.png"])
    assert set(result) == {"input", "prediction"}
    assert result["prediction"] == pytest.approx(255 * 0.02, rel=1e-5)
    write_predictions([result], tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "input,prediction,error"


def copy_with_imports(setup, tmp_path, imports) -> Path:
    """A copy of an export whose tltk.json lists `imports` (as a copied, edited model would)."""
    model = tmp_path / "copied" / "1"
    shutil.copytree(setup["base"] / "c" / "1", model)
    meta_path = model / "assets.extra" / "tltk.json"
    meta = json.loads(meta_path.read_text())
    assert meta["imports"] == ["tensorflow"]  # what tltk writes for an image model
    meta_path.write_text(json.dumps({**meta, "imports": imports}))
    return model


@pytest.mark.parametrize("imports", [["this"], ["tensorflow", "this", "os"]])
def test_model_metadata_cannot_choose_what_code_runs(setup, tmp_path, imports):
    assert "this" not in sys.modules  # (importing `this` prints the Zen of Python)
    model = copy_with_imports(setup, tmp_path, imports)
    with pytest.raises(PredictError) as e:
        load_exported(model)
    msg = str(e.value)
    assert msg.startswith(f"{model / 'assets.extra' / 'tltk.json'}: ")
    assert "'this'" in msg and "tensorflow_text" in msg  # the refused module; what is allowed
    assert "this" not in sys.modules


def test_a_missing_op_library_is_a_clear_error(setup, tmp_path, monkeypatch):
    model = copy_with_imports(setup, tmp_path, ["tensorflow", "tensorflow_text"])
    monkeypatch.setitem(sys.modules, "tensorflow_text", None)  # makes its import fail
    with pytest.raises(PredictError, match=r"tltk\.json: this model needs 'tensorflow_text'.*"
                       r"pip install tensorflow-text"):  # fmt: skip
        load_exported(model)
    monkeypatch.undo()
    (model / "assets.extra" / "tltk.json").write_text("{not json")
    with pytest.raises(PredictError, match=r"tltk\.json: not valid JSON"):
        load_exported(model)


def test_empty_input_is_reported_not_a_shape_error(setup, tmp_path):
    exported = load_exported(setup["base"] / "c")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "notes.txt").write_text("not an image")
    (tmp_path / "no_images" / ".hidden.png").write_bytes(b"")
    for inputs in ([tmp_path / "empty"], [tmp_path / "empty", tmp_path / "no_images"], []):
        with pytest.raises(PredictError, match=r"no images to predict in .*\.png"):
            predict_images(exported, inputs)
    with pytest.raises(PredictError, match=str(tmp_path / "no_images")):
        predict_images(exported, [tmp_path / "no_images"])
    with pytest.raises(PredictError, match="no texts to predict"):
        predict_texts(exported, [])
    with pytest.raises(PredictError, match="empty batch"):
        exported([])


def test_cli_refuses_model_imports_and_reports_empty_input(setup, tmp_path, capsys):
    model = copy_with_imports(setup, tmp_path, ["this"])
    tltk = Path(sys.executable).parent / "tltk"
    image = str(setup["images"] / "red.png")
    done = subprocess.run([str(tltk), "predict", str(model), image], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""  # `this` would print the Zen of Python
    assert done.stderr.startswith(f"tltk predict: error: {model / 'assets.extra' / 'tltk.json'}: ")
    assert "'this'" in done.stderr and done.stderr.count("\n") == 1

    (tmp_path / "empty").mkdir()
    assert main(["predict", str(setup["base"] / "c"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tltk predict: error: no images to predict in {tmp_path / 'empty'}: ")
    (tmp_path / "blank.txt").write_text("\n  \n")
    assert main(["predict", str(model), "--text-file", str(tmp_path / "blank.txt")]) == 2
    assert "blank.txt: no texts to predict" in capsys.readouterr().err
