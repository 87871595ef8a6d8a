"""The task-type contract, run over every registered head type (tltk.heads.HEAD_TYPES).

A new type gets checked here by adding its tiny labels to `LABELS`: the fast checks hold its
spec's label encoding, serving outputs and predictions together; the end-to-end one trains a
step, evaluates, exports (parity on), serves and predicts with it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_recipe
from PIL import Image

import tltk
from tltk import tasks
from tltk.data import build_pipeline
from tltk.data.decode import decode_image
from tltk.evaluate import format_summary
from tltk.heads import HEAD_PREFIX, HEAD_TYPES, get_head, head_types
from tltk.modalities.image import ImagePreprocessor
from tltk.predict import load_exported, predict_images
from tltk.recipe import load_recipe

# resnet8 at 16 px: the contract is the head type's; the smallest backbone keeps the traces,
# the export and its parity check cheap.
SIZE = 16
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 60, 230)}
# Per registered type: the manifest's label cell for an image of colour index c (of 0, 1, 2)
# and number i, and the data-section keys that make the reader parse it.
LABELS = {
    "classification": (lambda c, i: list(COLOURS)[c], {}),
    "multilabel": (
        lambda c, i: "|".join(list(COLOURS)[c : c + 1 + i % 2]),
        {"label_delimiter": "|"},
    ),
    "regression": (lambda c, i: f"{c / 2 + i % 2 / 10:.2f}", {}),
}


def write_manifest(root: Path, head_type: str, n: int = 18) -> Path:
    """n SIZE-px images, a third of each colour, and a CSV manifest of their `head_type` labels."""
    cell, _ = LABELS[head_type]
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        c = i % 3
        noise = rng.integers(-30, 31, (SIZE, SIZE, 3))
        pixels = np.clip(np.array(list(COLOURS.values())[c]) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{i}.png")
        rows.append({"path": f"{i}.png", "label": cell(c, i)})
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "labels.csv"


def contract_recipe(tmp_path: Path, head_type: str) -> dict:
    """One head phase of one step at SIZE px on the type's manifest; export with parity."""
    manifest = write_manifest(tmp_path / "data", head_type)
    recipe = tiny_recipe(
        tmp_path,
        manifest,
        name=f"contract_{head_type}",
        data={"source": "csv", "val_fraction": 0.2, "test_fraction": 0.2, **LABELS[head_type][1]},
        head={"type": head_type},
        train={"batch_size": 4, "steps_per_epoch": 1, "verbose": 0,
               "callbacks": {"tensorboard": False, "early_stopping": None, "reduce_lr": None}},
        export={"parity": True},
    )  # fmt: skip
    recipe["backbone"].update(name="resnet8", image_size=SIZE)
    recipe["phases"] = recipe["phases"][:1]
    return recipe


def test_every_registered_type_has_contract_labels_and_resolves_to_its_spec():
    assert set(LABELS) == set(head_types()), "add the new type's tiny labels to LABELS"
    for name in head_types():
        spec = get_head(name)
        assert spec.name == name and get_head(name) is spec  # one instance per type
        assert spec.label_kind in ("class", "classes", "value")
    with pytest.raises(ValueError, match="expected one of classification, multilabel"):
        get_head("detection")


@pytest.mark.parametrize("head_type", list(HEAD_TYPES))
def test_label_encoding_targets_and_serving_agree(tmp_path, head_type):
    """tf.data's labels are exactly the loss's targets; the serving outputs are the documented
    ones; `prediction_rows` gives one row per example from them."""
    spec = get_head(head_type)
    recipe = load_recipe(contract_recipe(tmp_path, head_type))
    data = tasks.load_data(recipe)
    train = data.splits["train"]
    ds = build_pipeline(
        train, num_classes=data.num_classes, preprocessor=ImagePreprocessor(SIZE), batch_size=64,
        training=False,
        seed=0, head_type=head_type,
    )  # fmt: skip
    labels = np.concatenate([y.numpy() for _, y in ds])
    targets = spec.targets(train.labels, data.num_classes)
    assert labels.dtype == np.float32 and targets.dtype == np.float32
    np.testing.assert_array_equal(labels, targets)
    width = spec.num_outputs(data.num_classes)
    scores = np.random.default_rng(1).uniform(size=(5, width)).astype("float32")
    spec.check_outputs(width, data.class_names)
    with pytest.raises(ValueError):
        spec.check_outputs(width + 1, data.class_names)
    outputs = spec.serving_outputs(tf.constant(scores), data.class_names)
    assert set(outputs) == set(spec.output_doc()) and spec.parity_output in outputs
    assert all(v.shape[0] == 5 for v in outputs.values())
    rows = spec.prediction_rows({k: v.numpy() for k, v in outputs.items()}, top_k=2)
    assert len(rows) == 5 and all(isinstance(row, dict) and row for row in rows)
    loss = spec.loss(recipe.head)(targets[:5], spec.predictions(scores[: len(targets[:5])]))
    assert np.isfinite(float(loss)) and float(loss) > 0


@pytest.mark.slow
@pytest.mark.parametrize("head_type", list(HEAD_TYPES))
def test_head_type_end_to_end(tmp_path, head_type):
    """Train a step, evaluate, export (parity in a fresh process), serve and predict."""
    spec = get_head(head_type)
    result = tltk.train(contract_recipe(tmp_path, head_type))
    names = result.data.class_names
    model, run = result.model, result.run_dir
    # The model: the spec's width and activation on the scores layer.
    scores_layer = model.get_layer(f"{HEAD_PREFIX}scores")
    assert model.output.shape[-1] == spec.num_outputs(len(names))
    assert scores_layer.activation is keras.activations.get(spec.activation)
    # Evaluation: metrics.json, the spec's figures, the summary; a re-evaluation from the
    # saved weights gives the same numbers.
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == result.metrics and metrics["task"] == head_type
    assert metrics["n"] == len(result.data.splits["test"]) and np.isfinite(metrics["loss"])
    for stem in spec.figures(metrics):
        assert (run / f"{stem}.png").is_file()
    assert format_summary(metrics).startswith(f"{head_type} on test: n={metrics['n']}")
    again = tltk.evaluate_run(run)
    assert again["loss"] == pytest.approx(metrics["loss"], rel=1e-5)
    # Export: tltk.json, labels.txt when the type has class names, the card's outputs, parity.
    extra = result.export_path / "assets.extra"
    meta = json.loads((extra / "tltk.json").read_text())
    card = json.loads((extra / "model_card.json").read_text())
    assert meta["task"] == head_type and meta["class_names"] == names
    assert (extra / "labels.txt").is_file() == spec.labels_file
    assert card["signatures"]["serving_default"]["outputs"] == spec.output_doc()
    assert card["parity"]["passed"] and card["parity"]["max_abs_diff"] <= 1e-4
    # Serving: the SavedModel's outputs are the spec's outputs of the Keras model's scores.
    files = [str(p) for p in result.data.splits["test"].examples]
    exported = load_exported(result.export_path)
    served = exported([Path(f).read_bytes() for f in files])
    images = tf.stack([decode_image(tf.io.read_file(f), SIZE) for f in files])
    expected = spec.serving_outputs(tf.constant(model.predict(images, verbose=0)), names)
    assert set(served) == set(expected)
    for key, value in expected.items():
        if value.dtype == tf.string:
            np.testing.assert_array_equal(served[key], value.numpy())
        else:
            np.testing.assert_allclose(served[key], value.numpy(), atol=1e-5)
    # Predict: one row per file, as the spec reads the served outputs.
    rows = predict_images(result.export_path, files, top_k=2)
    assert [r["input"] for r in rows] == files and not any(r.get("error") for r in rows)
    got = [{k: v for k, v in r.items() if k not in ("input", "error")} for r in rows]
    assert_close(got, spec.prediction_rows(served, top_k=2))


def assert_close(got, want, path="rows"):
    """Nested dicts/lists equal, floats to 1e-5 (pytest.approx takes no nesting)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), path
        for key in want:
            assert_close(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), path
    else:
        assert got == want, path
