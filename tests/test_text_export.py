"""Text export: a SavedModel that takes raw strings, parity in a fresh TensorFlow-only process,
prediction from the export alone, and whole text runs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from text_helpers import make_tiny_bert, texts, write_csv

from tltk.backbones import build_backbone
from tltk.export import export_text_model
from tltk.model import build_model
from tltk.predict import predict_texts
from tltk.recipe import BackboneConfig, HeadConfig

CLASSES = ["games", "science", "sound"]
SAMPLES = [t for t, _ in texts(2)] + ["", "naïve ☃ unknown wörds " * 30]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.mark.slow
def test_serving_default_on_raw_strings_matches_the_keras_model(bert_dir, tmp_path):
    cfg = BackboneConfig(name=str(bert_dir), weights=None, sequence_length=12)
    backbone = build_backbone(cfg, modality="text")
    model = build_model(backbone, HeadConfig(), len(CLASSES)).model
    result = export_text_model(
        model,
        preprocessor=backbone.preprocessor,
        class_names=CLASSES,
        export_root=tmp_path,
        name="tiny_text",
        task="classification",
        parity_inputs=SAMPLES,
    )
    assert result.parity["passed"] and result.parity["max_abs_diff"] <= 1e-4
    assert result.parity["child_imports"] == ["tensorflow", "tensorflow_text"]
    meta = json.loads((result.path / "assets.extra" / "tltk.json").read_text())
    assert meta["kind"] == "text" and meta["input"] == "texts" and meta["sequence_length"] == 12

    expected = model.predict(backbone.preprocessor(tf.constant(SAMPLES)), verbose=0)
    loaded = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    got = loaded(texts=tf.constant(SAMPLES))
    np.testing.assert_allclose(got["scores"].numpy(), expected, atol=1e-4)
    assert [c.decode() for c in got["top_class"].numpy()] == [
        CLASSES[i] for i in expected.argmax(1)
    ]

    rows = predict_texts(result.path.parent, SAMPLES[:2], top_k=2)
    assert [r["input"] for r in rows] == SAMPLES[:2]
    assert rows[0]["top"][0]["label"] == CLASSES[int(expected[0].argmax())]
    assert rows[0]["top"][0]["score"] == pytest.approx(float(expected[0].max()), abs=1e-5)


def _recipe(tmp_path, backbone: dict, **extra) -> dict:
    data = write_csv(tmp_path / "texts.csv", texts(8))
    return {
        "name": "tiny_text",
        "modality": "text",
        "data": {"source": "text", "path": str(data), "val_fraction": 0.15, "test_fraction": 0.2},
        "backbone": backbone,
        "phases": [
            {"train": "head", "epochs": 1, "learning_rate": 0.01},
            {"train": "top:2", "epochs": 1, "learning_rate": 0.001, "layerwise_decay": 0.5},
        ],
        "train": {
            "batch_size": 8,
            "runs_dir": str(tmp_path / "runs"),
            "verbose": 0,
            "callbacks": {"tensorboard": False, "backup": False},
        },
        "evaluate": {"plots": False},
        "export": {"dir": str(tmp_path / "saved_models"), "parity": True, "parity_examples": 4},
        **extra,
    }


@pytest.mark.slow
def test_train_a_tiny_bert_with_lora_end_to_end(bert_dir, tmp_path):
    import tltk
    from tltk.api import export_run

    backbone = {"name": str(bert_dir), "weights": None, "sequence_length": 16, "lora_rank": 2}
    result = tltk.train(_recipe(tmp_path, backbone))
    card = json.loads((result.export_path / "assets.extra" / "model_card.json").read_text())
    assert card["parity"]["passed"] and card["kind"] == "text"
    assert (result.run_dir / "text_backbone" / "backbone.lora.h5").is_file()
    assert set(result.metrics) >= {"accuracy", "f1_macro"}
    again = export_run(result.run_dir)  # rebuilt offline from the run folder alone
    assert again.name == "2"
    rows = predict_texts(again, ["play chess", "plot genome data"], top_k=1)
    assert all(r["top"][0]["label"] in CLASSES for r in rows)
    # The CLI: --text and --text-file (one text a line, blank lines skipped), in input order.
    from tltk.cli import main

    lines = tmp_path / "texts.txt"
    lines.write_text("midi synth track\n\nchess puzzle\n", encoding="utf-8")
    out = tmp_path / "preds.json"
    args = ["predict", str(again), "--text", "play chess", "--text-file", str(lines)]
    assert main([*args, "--top-k", "2", "--out", str(out)]) == 0
    cli_rows = json.loads(out.read_text())
    assert [r["input"] for r in cli_rows] == ["play chess", "midi synth track", "chess puzzle"]
    assert all(len(r["top"]) == 2 and r["top"][0]["label"] in CLASSES for r in cli_rows)
    assert cli_rows[0]["top"][0]["label"] == rows[0]["top"][0]["label"]  # same model, same text
    assert cli_rows[0]["top"][0]["score"] == pytest.approx(rows[0]["top"][0]["score"], abs=1e-6)


@pytest.mark.slow
def test_train_the_rnn_from_scratch_end_to_end(tmp_path):
    import tltk

    backbone = {"name": "text_rnn", "sequence_length": 8, "kwargs": {"units": 8}}
    recipe = _recipe(tmp_path, backbone)
    recipe["phases"][1]["train"] = "all"
    result = tltk.train(recipe)
    assert result.metrics["n"] == len(result.data.splits["test"]) > 0
    assert (result.export_path / "saved_model.pb").is_file()
    vocabulary = (result.run_dir / "text_backbone" / "vocabulary.txt").read_text().split("\n")
    train_words = {w for t in result.data.splits["train"].examples for w in t.split()}
    assert set(vocabulary[2:-1]) == train_words
