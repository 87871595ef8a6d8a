"""`tltk auto DATA --budget`: what it chooses from the data and what is offline, and the whole
path (choices printed, a search, the best trained, evaluated and exported) on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_image_folder

from tltk.recipe import load_recipe

# --- tltk auto: what it chooses --------------------------------------------------------------


def test_auto_picks_a_small_scratch_backbone_for_small_images_without_weights(
    tmp_path, monkeypatch
):
    from tltk.tuning.auto import plan

    monkeypatch.setenv("TLTK_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    folder = make_image_folder(tmp_path / "images", {"a": 4, "b": 4}, size=16)
    raw, reasons = plan(folder, "10m")
    recipe = load_recipe(raw)  # a valid recipe, its space checked
    assert (recipe.backbone.name, recipe.backbone.image_size) == ("resnet20", 32)
    assert recipe.tune.max_time == pytest.approx(420) and recipe.tune.max_trials is None
    assert "8 images in 2 classes, median side 16 px" in reasons[0]
    assert any("resnet20" in r for r in reasons)


def test_auto_takes_imagenet_weights_when_they_are_offline(tmp_path, monkeypatch):
    from tltk.tuning.auto import plan

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "efficientnet_lite0_imagenet_notop.weights.h5").write_bytes(b"")
    monkeypatch.setenv("TLTK_WEIGHTS_DIR", str(weights))
    folder = make_image_folder(tmp_path / "images", {"a": 3, "b": 3}, size=180)
    recipe = load_recipe(plan(folder, 600)[0])
    assert (recipe.backbone.name, recipe.backbone.weights) == ("efficientnet_lite0", "imagenet")
    assert recipe.backbone.image_size == 224


def test_auto_sizes_the_text_sequence_from_the_data(tmp_path, monkeypatch):
    from tltk.tuning.auto import AutoError, plan

    texts = tmp_path / "texts.csv"
    rows = [f"{' '.join(['word'] * n)},{'ab'[n % 2]}" for n in range(1, 21)]
    texts.write_text("text,label\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)  # no models/all-MiniLM-L6-v2 here
    raw, _ = plan(texts, "5m")
    assert load_recipe(raw).backbone.name == "text_rnn"
    minilm = tmp_path / "models" / "all-MiniLM-L6-v2"
    minilm.mkdir(parents=True)
    (minilm / "config.json").write_text("{}")
    raw, reasons = plan(texts, "5m")
    # 95 % of the texts have at most 19 words: 19 x 1.4 = 26 tokens -> 32
    assert raw["backbone"]["sequence_length"] == 32 and "at most 19 words" in reasons[0]
    with pytest.raises(AutoError, match="class folders"):
        plan(tmp_path / "notes.md", "5m")


@pytest.mark.slow
def test_auto_prints_its_choices_searches_trains_and_exports_a_model_that_predicts(
    tmp_path, monkeypatch, capsys
):
    from tltk.cli import main
    from tltk.predict import predict_images

    monkeypatch.setenv("TLTK_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.chdir(tmp_path)  # runs/ and saved_models/ go here
    folder = make_image_folder(tmp_path / "images", {"a": 10, "b": 10}, size=16)
    # Cheap: resnet8 (the choice is resnet20, printed before --set applies), 16 px, one
    # epoch a phase, no fresh-process parity check (the export is loaded and predicts below).
    tiny = ["backbone.name=resnet8", "backbone.image_size=16", "phases.0.epochs=1",
            "phases.1.epochs=1", "train.batch_size=4", "train.verbose=0",
            "export.parity=false", "evaluate.plots=false"]  # fmt: skip
    code = main(["auto", str(folder), "--budget", "10s", *(f"--set={s}" for s in tiny)])
    out, err = capsys.readouterr()
    assert code == 0, err
    logged = out + err
    assert "auto: data: 20 images in 2 classes, median side 16 px" in logged
    assert "auto: backbone: resnet20 from scratch at 32 px" in logged
    assert "auto: search: Bayesian optimisation" in logged
    export = Path(out.strip().splitlines()[-1])  # the command prints the export's folder
    assert (export / "saved_model.pb").is_file()
    search = next((tmp_path / "runs" / "auto_images").glob("tune-*"))
    rows = (search / "results.csv").read_text().splitlines()
    assert len(rows) >= 2  # a header and at least one trial
    best = load_recipe(search / "best_recipe.yaml")
    assert best.tune is None and best.backbone.name == "resnet8"
    card = json.loads((export / "assets.extra" / "model_card.json").read_text())
    metrics = json.loads((Path(card["run_dir"]) / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0  # evaluated on its test split
    predictions = predict_images(export, [folder / "a" / "0.png", folder / "b" / "0.png"])
    for p in predictions:
        assert p["top"][0]["label"] in ("a", "b")
        assert sum(t["score"] for t in p["top"]) == pytest.approx(1.0, abs=1e-4)
