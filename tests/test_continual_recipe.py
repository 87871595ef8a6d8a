"""Continual learning without training: the recipe sections, the recipe `tltk continue` builds,
past run folders, leakage into the old test split, the forgetting numbers, the lineage."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_image_folder

from tltk import tasks
from tltk.continual.continue_run import BUFFER_PER_CLASS, continue_recipe
from tltk.continual.measure import continual_metrics, plot_lineage, summary_lines
from tltk.continual.past_run import PastRun
from tltk.data.errors import DataError
from tltk.errors import ContinueError
from tltk.model_card import card_markdown
from tltk.recipe import ContinueConfig, RecipeError, load_recipe

OLD = ["a", "b", "c"]


def _raw(tmp_path: Path, data: Path, **sections) -> dict:
    raw = {
        "name": "cl",
        "data": {"path": str(data), "val_fraction": 0.0, "test_fraction": 0.0},
        "backbone": {"name": "resnet8", "weights": "none", "image_size": 16},
        "train": {"runs_dir": str(tmp_path / "runs")},
    }
    raw.update(sections)
    return raw


def _past_run(tmp_path: Path, *, finished: bool = True) -> tuple[Path, Path]:
    """A run folder as a finished 3-class run leaves it (its weights file a placeholder: these
    tests never build its model), its test split 2 images a class. Returns (run, images)."""
    images = make_image_folder(tmp_path / "old", {c: 4 for c in OLD}, size=16)
    run = tmp_path / "runs" / "cl" / "20260101-000000"
    run.mkdir(parents=True)
    recipe = load_recipe(_raw(tmp_path, images))
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    (run / "classes.json").write_text(json.dumps(OLD))
    (run / "state.json").write_text(json.dumps({"finished": finished}))
    (run / "model.weights.h5").write_bytes(b"")
    with open(run / "splits.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "example", "origin", "label"])
        for c in OLD:
            for i in range(4):
                path = str(images / c / f"{i}.png")
                writer.writerow(["test" if i < 2 else "train", path, path, c])
    os.symlink(run.name, run.parent / "latest")
    return run, images


def test_strategies_are_validated_and_written_in_one_order():
    assert ContinueConfig(run="r", strategy="distill+rehearsal").strategy == [
        "rehearsal",
        "distill",
    ]
    assert ContinueConfig(run="r").strategy == ["rehearsal", "distill"]
    assert ContinueConfig(run="r", strategy=["finetune"]).strategy == ["finetune"]
    for bad, message in (("finetune+distill", "naive baseline"), ("ewc", "finetune")):
        with pytest.raises(ValueError, match=message):
            ContinueConfig(run="r", strategy=bad)


def test_recipe_checks_of_continue_from(tmp_path):
    base = _raw(tmp_path, tmp_path)
    with pytest.raises(RecipeError, match="replay.budget"):
        load_recipe({**base, "continue_from": {"run": "r", "strategy": "rehearsal"}})
    with pytest.raises(RecipeError, match="classification"):
        load_recipe({**base, "head": {"type": "regression"}, "continue_from": {"run": "r"}})
    with pytest.raises(RecipeError, match="temperature"):
        load_recipe({**base, "continue_from": {"run": "r", "strategy": "distill",
                                               "distill": {"temperature": 0}}})  # fmt: skip
    recipe = load_recipe({**base, "continue_from": {"run": "r", "strategy": "distill"}})
    assert recipe.continue_from.distill.temperature == 2.0 and recipe.replay.budget == 0


def test_continue_recipe_is_the_past_recipe_on_the_new_data(tmp_path):
    run, _ = _past_run(tmp_path)
    new = make_image_folder(tmp_path / "new", {"d": 3}, size=16)
    cont = continue_recipe(run.parent / "latest", new)
    assert cont.continue_from.run == str(run)  # `latest` is resolved: it moves later
    assert cont.data.path == str(new) and cont.name == "cl"
    assert cont.backbone.name == "resnet8" and cont.backbone.image_size == 16
    # Rehearsal without a budget in the past recipe gets one per old class.
    assert cont.replay.budget == BUFFER_PER_CLASS * len(OLD)
    assert cont.continue_from.strategy == ["rehearsal", "distill"]
    chosen = continue_recipe(run, new, overrides=["continue_from.strategy=finetune"])
    assert chosen.continue_from.strategy == ["finetune"] and chosen.replay.budget == 0
    other = continue_recipe(run, recipe=_raw(tmp_path, new, replay={"budget": 9}))
    assert other.replay.budget == 9 and other.continue_from.run == str(run)


def test_a_run_that_cannot_be_continued_says_why(tmp_path):
    with pytest.raises(ContinueError, match="not a finished tltk run.*state.json"):
        PastRun.open(tmp_path)
    run, images = _past_run(tmp_path, finished=False)
    with pytest.raises(ContinueError, match="has not finished"):
        PastRun.open(run)
    (run / "state.json").write_text(json.dumps({"finished": True}))
    os.remove(images / "a" / "0.png")
    with pytest.raises(ContinueError, match="1 file.*no longer exist"):
        PastRun.open(run).split("test")


def test_new_data_equal_to_the_old_test_split_is_reported_dropped_or_refused(tmp_path):
    run, images = _past_run(tmp_path)
    new = make_image_folder(tmp_path / "new", {"d": 4, "a": 2}, size=16, seed=5)
    shutil.copy(images / "b" / "1.png", new / "d" / "copied.png")  # a past test image
    data = tasks.load_data(continue_recipe(run, new, overrides=["continue_from.strategy=distill"]))
    assert data.class_names == [*OLD, "d"]  # old classes first; more data of `a` is fine
    leakage = data.report["continual"]["leakage"]
    assert leakage["dropped"] == 1 and leakage["policy"] == "drop"
    assert [(p["past"], p["labels"]) for p in leakage["pairs"]] == [
        (str(images / "b" / "1.png"), ["b", "d"])
    ]
    assert not any("copied" in str(x) for s in data.splits.values() for x in s.examples)
    # The old test split comes first and whole: forgetting is measured on it.
    test = data.splits["test"]
    assert data.report["continual"]["test"]["old"] == 6
    assert [str(x) for x in test.examples[:6]] == [
        str(images / c / f"{i}.png") for c in OLD for i in range(2)
    ]
    with pytest.raises(DataError, match="(?s)1 new example.*leakage: drop"):
        tasks.load_data(
            continue_recipe(
                run, new, overrides=["continue_from.strategy=distill", "data.clean.leakage=error"]
            )  # fmt: skip
        )


def _scores(predicted: list[int], k: int) -> np.ndarray:
    return np.eye(k)[predicted] * 0.9 + 0.1 / k


def test_forgetting_numbers_split_the_test_rows_into_old_and_new():
    report = {"past_run": "runs/a", "old_classes": OLD, "new_classes": ["d", "e"],
              "test": {"old": 4, "new": 4}}  # fmt: skip
    y_true = np.array([0, 1, 2, 2, 3, 4, 0, 4])
    predicted = [0, 1, 3, 2, 3, 0, 0, 4]  # old rows: 3 of 4; new classes 2 of 3; new data 3 of 4
    lineage = [{"step": 0, "run": "runs/a", "classes": OLD, "new_classes": OLD, "overall": 0.8}]
    scores = _scores(predicted, 5)
    scores[2, 2] += 0.05  # taken for new class d, but ranked right among the old classes
    block = continual_metrics(y_true, scores, report=report,
                              before={"accuracy": 1.0}, lineage=lineage, run_dir="runs/b",
                              strategy=["rehearsal"])  # fmt: skip
    assert block["old_classes"] == {"n": 4, "before": 1.0, "after": 0.75, "among_old": 1.0}
    assert block["forgetting"] == pytest.approx(0.25)
    assert block["new_classes"] == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    assert block["new_data"]["accuracy"] == pytest.approx(0.75)
    assert block["overall"] == {"n": 8, "accuracy": 0.75}
    step = block["lineage"][-1]
    assert step["step"] == 1 and step["classes"] == [*OLD, "d", "e"] and step["run"] == "runs/b"
    assert "forgetting 0.2500  (n=4; among the old classes only 1.0000)" in "\n".join(
        summary_lines(block)
    )


def test_the_lineage_is_drawn_and_tabled(tmp_path):
    lineage = [
        {"step": 0, "run": "runs/a", "classes": OLD, "new_classes": OLD, "overall": 0.9},
        {"step": 1, "run": "runs/b", "classes": [*OLD, "d"], "new_classes": ["d"],
         "strategy": ["rehearsal", "distill"], "old_before": 0.9, "old_after": 0.85,
         "forgetting": 0.05, "new": 0.7, "overall": 0.82},
    ]  # fmt: skip
    png = plot_lineage(lineage, tmp_path / "forgetting.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    doc = {"name": "cl", "version": 2, "task": "classification", "kind": "image",
           "exported_at": "now", "lineage": lineage}  # fmt: skip
    markdown = card_markdown(doc)
    assert "| 0 | `runs/a` | 3 (first run) | - | - | - | - | - | 0.9000 |" in markdown
    assert (
        "| 1 | `runs/b` | d | rehearsal+distill | 0.9000 | 0.8500 | 0.0500 | 0.7000 |" in markdown
    )


def test_tltk_continue_passes_its_arguments_and_fails_in_one_line(tmp_path, capsys, monkeypatch):
    from tltk import cli
    from tltk.continual import continue_run as module

    assert cli.main(["continue", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a finished tltk run" in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(module, "continue_run", lambda *a, **k: calls.append((a, k)))
    args = ["continue", "runs/x/latest", "--data", "new/", "--set", "train.verbose=0", "--new"]
    assert cli.main(args) == 0
    ((positional, keywords),) = calls
    assert positional == ("runs/x/latest", "new/") and keywords["resume"] is False
    assert keywords["overrides"] == ["train.verbose=0"] and keywords["recipe"] is None
