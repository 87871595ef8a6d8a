"""Continue runs end to end on tiny data: a 3-class run continued with 2 new classes
(rehearsal + distill), its forgetting numbers against real evaluations, its export and
predictions, its lineage; a killed continue run resumed. (Slow: each trains; the checks that
need no training are in test_continual_recipe.py.)"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_image_folder, train_in_this_process

import tltk
from tltk import tasks
from tltk.continual.continue_run import continue_recipe
from tltk.continual.measure import accuracy
from tltk.continual.past_run import PastRun
from tltk.data.types import LabelledData

DRIVER = Path(__file__).with_name("fault_driver.py")
OLD, NEW = ("a", "b", "c"), ("d", "e")


def _folders(root: Path) -> tuple[Path, Path]:
    """Old classes a, b, c and new classes d, e: one folder written at once, so every class
    has its own colour, then split in two."""
    everything = make_image_folder(root / "all", {c: 10 for c in OLD + NEW}, size=16)
    old, new = root / "old", root / "new"
    for names, folder in ((OLD, old), (NEW, new)):
        for name in names:
            shutil.copytree(everything / name, folder / name)
    return old, new


def _recipe(tmp_path: Path, data: Path, budget: int) -> dict:
    return {
        "name": "cl",
        "data": {"path": str(data), "val_fraction": 0.2, "test_fraction": 0.3},
        "backbone": {"name": "resnet8", "weights": "none", "image_size": 16},
        "phases": [{"name": "all", "train": "all", "epochs": 1, "learning_rate": 0.01}],
        "train": {
            "batch_size": 8,
            "runs_dir": str(tmp_path / "runs"),
            "verbose": 0,
            "callbacks": {"tensorboard": False, "early_stopping": None},
        },
        "evaluate": {"plots": False},
        "export": {"dir": str(tmp_path / "saved_models"), "parity_examples": 2},
        "replay": {"budget": budget},
    }


@pytest.fixture(scope="module")
def continued(tmp_path_factory):
    """(past result, continue result, new data folder): rehearsal + distill."""
    tmp = tmp_path_factory.mktemp("continued")
    old, new = _folders(tmp / "images")
    first = _recipe(tmp, old, budget=6)
    first["export"]["parity"] = False  # the continue run's export is parity-checked
    past = tltk.train(first)
    sets = ["continue_from.strategy=rehearsal+distill", "export.parity=true"]
    result = tltk.continue_run(past.run_dir, new, overrides=sets)
    return past, result, new


@pytest.mark.slow
def test_new_classes_come_after_the_old_and_the_buffer_is_replayed(continued):
    past, result, _ = continued
    assert json.loads((result.run_dir / "classes.json").read_text()) == list(OLD + NEW)
    assert result.model.output.shape[-1] == 5
    info = json.loads((past.run_dir / "replay" / "buffer.json").read_text())
    assert info["size"] == 6 and info["per_class"] == {"a": 2, "b": 2, "c": 2}
    # The buffer is the past run's: its training examples, mixed into the new training split.
    continual = result.data.report["continual"]
    assert continual["new_classes"] == list(NEW) and continual["train"]["replay"] == 6
    train = result.data.splits["train"]
    replayed = [o for o in train.origins if o.startswith("replay:")]
    past_train = set(PastRun.open(past.run_dir).split("train").examples.tolist())
    assert len(replayed) == 6 and {o.removeprefix("replay:") for o in replayed} <= past_train
    history = result.history
    assert "distill_loss" in history and np.all(np.isfinite(history["distill_loss"]))


@pytest.mark.slow
def test_forgetting_numbers_come_from_evaluations_of_both_models(continued):
    past, result, _ = continued
    block = result.metrics["continual"]
    n_old = block["old_classes"]["n"]
    assert n_old == len(PastRun.open(past.run_dir).split("test")) == 9
    # Before: the past model on its own test split (the past run's own evaluation, reused),
    # which the past model, rebuilt from its run folder, gives again.
    assert block["old_classes"]["before"] == pytest.approx(past.metrics["accuracy"], abs=1e-6)
    old_recipe, old_model, old_names = tasks.load_run(past.run_dir)
    shell = LabelledData(old_names, {"test": PastRun.open(past.run_dir).split("test")})
    y_true, y_score, _ = tasks.predict_split(old_recipe, old_model, shell, "test", 8)
    assert accuracy(y_true, y_score) == pytest.approx(block["old_classes"]["before"], abs=1e-6)
    # After: the continued model, rebuilt from its run folder, on the same examples.
    recipe, model, names = tasks.load_run(result.run_dir)
    y_true, y_score, _ = tasks.predict_split(recipe, model, result.data, "test", 8)
    assert accuracy(y_true[:n_old], y_score[:n_old]) == pytest.approx(
        block["old_classes"]["after"], abs=1e-6
    )
    new_rows = y_true >= len(OLD)
    assert block["new_classes"]["n"] == int(new_rows.sum()) == 6
    assert accuracy(y_true[new_rows], y_score[new_rows]) == pytest.approx(
        block["new_classes"]["accuracy"], abs=1e-6
    )
    assert block["forgetting"] == pytest.approx(
        block["old_classes"]["before"] - block["old_classes"]["after"]
    )
    assert block["overall"]["accuracy"] == pytest.approx(result.metrics["accuracy"])
    on_disk = json.loads((result.run_dir / "metrics.json").read_text())["continual"]
    assert [s["run"] for s in on_disk["lineage"]] == [str(past.run_dir), str(result.run_dir)]


@pytest.mark.slow
def test_the_new_version_of_the_export_names_the_new_classes(continued):
    past, result, new = continued
    assert past.export_path.name == "1" and result.export_path.name == "2"
    assert past.export_path.parent == result.export_path.parent  # the same SavedModel name
    files = sorted(str(p) for p in (new / "d").glob("*.png"))[:2]
    rows = tltk.predict_images(result.export_path, files, top_k=5)
    assert all(sorted(t["label"] for t in r["top"]) == sorted(OLD + NEW) for r in rows)
    card = json.loads((result.export_path / "assets.extra" / "model_card.json").read_text())
    assert [s["classes"] for s in card["lineage"]] == [list(OLD), list(OLD + NEW)]
    assert card["parity"]["passed"]
    markdown = (result.export_path / "assets.extra" / "model_card.md").read_text()
    assert "## Lineage" in markdown and str(result.run_dir) in markdown


@pytest.mark.slow
def test_a_third_step_extends_the_lineage_and_draws_it(continued, tmp_path):
    _, result, _ = continued
    more = make_image_folder(tmp_path / "more", {"a": 4, "f": 8}, size=16, seed=7)
    third = tltk.continue_run(
        result.run_dir, more, overrides=["continue_from.strategy=distill", "evaluate.plots=true"]
    )
    names = json.loads((third.run_dir / "classes.json").read_text())
    assert names == [*OLD, *NEW, "f"]  # new data of the old class a is accepted as well
    lineage = third.metrics["continual"]["lineage"]
    assert [s["step"] for s in lineage] == [0, 1, 2]
    assert [s["new_classes"] for s in lineage[1:]] == [list(NEW), ["f"]]
    assert (third.run_dir / "forgetting.png").stat().st_size > 5000


@pytest.mark.slow
def test_a_killed_continue_run_resumes_with_the_buffer_it_selected(tmp_path, capsys):
    old, new = _folders(tmp_path / "images")
    past = tltk.train({**_recipe(tmp_path, old, budget=0), "export": {"enabled": False}})
    assert not (past.run_dir / "replay").exists()  # kept none: the continue run selects one
    # Two epochs: the driver kills in the second epoch's second batch.
    sets = ["replay.budget=3", "replay.selection=random", "phases.0.epochs=2"]
    cont = continue_recipe(past.run_dir, new, overrides=sets)
    path = tmp_path / "cont.yaml"
    path.write_text(yaml.safe_dump(cont.model_dump(mode="json")))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(DRIVER), str(path), "mid_epoch"]
    killed = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    runs = (tmp_path / "runs" / "cl").iterdir()
    (run,) = [p for p in runs if p != past.run_dir and not p.is_symlink()]
    buffer = run / "rehearsal"
    first = {p.name: p.read_bytes() for p in buffer.rglob("*") if p.is_file()}
    assert json.loads((buffer / "buffer.json").read_text())["size"] == 3
    assert not (past.run_dir / "replay").exists() and not (past.run_dir / "rehearsal").exists()
    # Resumed in this process: it sees only what the killed one left on disk.
    log = train_in_this_process(capsys, path)
    assert "Resuming run" in log and "selecting one" not in log
    assert {p.name: p.read_bytes() for p in buffer.rglob("*") if p.is_file()} == first
    with open(run / "splits.csv", newline="") as f:
        replayed = [r for r in csv.DictReader(f) if r["origin"].startswith("replay:")]
    assert len(replayed) == 3 and all(r["split"] == "train" for r in replayed)
    assert json.loads((run / "state.json").read_text())["finished"]
