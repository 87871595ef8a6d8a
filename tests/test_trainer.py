"""The trainer end to end: phases, epoch count across phases, kill-and-resume, run folders."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import helpers
import numpy as np
import pytest
import yaml
from helpers import make_image_folder, train_in_this_process

import tltk


def tiny_recipe(tmp_path, small: bool = False, **extra):
    """Two phases (2 + 4 epochs) on 36 images; `section__field=value` sets one key. `small`:
    resnet8 at 16 px (builds, traces and trains in a fraction of MobileNetV3-Small's time)."""
    data = make_image_folder(tmp_path / "images", {"a": 12, "b": 12, "c": 12}, size=32)
    recipe = helpers.tiny_recipe(
        tmp_path,
        data,
        epochs=(2, 4),
        train={"verbose": 2, "callbacks": {"early_stopping": None, "tensorboard": False}},
        export={"enabled": False},
    )
    recipe["phases"][1]["schedule"] = "cosine"  # its epochs log other keys than the head's
    if small:  # for tests that train: what they check is the trainer, not MobileNetV3-Small
        recipe["backbone"].update(name="resnet8", image_size=16)
        recipe["phases"][1]["train"] = "top:2"  # resnet8's top group is its last BatchNorm
    for key, value in extra.items():
        section, _, field = key.partition("__")
        recipe.setdefault(section, {})[field] = value
    return recipe


@pytest.mark.slow
def test_train_returns_model_history_metrics_and_writes_the_run(tmp_path):
    result = tltk.train(tiny_recipe(tmp_path, small=True))
    run = result.run_dir
    assert result.model.output.shape[-1] == 3
    history = result.history
    assert history["epoch"] == [0, 1, 2, 3, 4, 5]  # epochs continue across phases
    # One header for both phases: LR constant 0.01, then the cosine decaying from 0.001.
    lr = history["learning_rate"]
    assert lr[:2] == pytest.approx([0.01, 0.01])
    assert 0.001 >= lr[2] > lr[3] > lr[4] > lr[5] > 0
    assert len(history["accuracy"]) == len(history["val_accuracy"]) == 6
    state = json.loads((run / "state.json").read_text())
    assert [(p["start_epoch"], p["end_epoch"]) for p in state["phases"]] == [(0, 2), (2, 6)]
    assert state["finished"]
    # What `auto` became on this CPU, kept with the run.
    hardware = state["hardware"]
    assert (hardware["accelerator"], hardware["precision"], hardware["jit_compile"]) == (
        "cpu",
        "float32",
        False,
    )
    assert (hardware["replicas"], hardware["global_batch"], hardware["workers"]) == (1, 8, 1)
    for name in [
        "recipe.yaml",
        "data_report.json",
        "metrics.json",
        "history.csv",
        "model.weights.h5",
        "backbone.weights.h5",
        "learning_curves.png",
        "confusion_matrix.png",
        "classes.json",
        "splits.csv",
    ]:
        assert (run / name).is_file(), name
    # splits.csv lists every example of every split once, with its class (the folder name).
    rows = list(csv.DictReader((run / "splits.csv").open()))
    assert Counter(r["split"] for r in rows) == {n: len(s) for n, s in result.data.splits.items()}
    assert all(Path(r["example"]).parent.name == r["label"] for r in rows)
    assert len({r["example"] for r in rows}) == len(rows)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == result.metrics and metrics["n"] == len(result.data.splits["test"]) > 0
    assert metrics["accuracy"] == pytest.approx(
        sum(row["support"] * row["recall"] for row in metrics["per_class"].values()) / metrics["n"]
    )  # the headline accuracy is the per-class recalls weighted by support
    assert (run.parent / "latest").resolve() == run.resolve()
    # The resolved recipe is written with the run and loads back as the same recipe.
    assert tltk.load_recipe(run / "recipe.yaml").phases[1].train == "top:2"
    # The same recipe again: the finished run is a no-op that returns its results, untouched.
    before = _files(run)
    again = tltk.train(tiny_recipe(tmp_path, small=True))
    assert again.run_dir == run and again.metrics == result.metrics
    assert _files(run) == before
    # resume=False (`--new`) gets its own folder; the first is untouched.
    second = tltk.train(tiny_recipe(tmp_path, small=True), resume=False)
    assert second.run_dir != run
    assert _files(run) == before


@pytest.mark.slow
def test_frozen_phase_keeps_backbone_and_bn_statistics(tmp_path):
    recipe = tiny_recipe(tmp_path, small=True)
    recipe["phases"] = [{"name": "head", "train": "head", "epochs": 2, "learning_rate": 0.01}]
    recipe["backbone"]["weights"] = None
    import keras

    from tltk.backbones import build_backbone
    from tltk.recipe import BackboneConfig

    keras.utils.set_random_seed(recipe.get("seed", 42))
    reference = build_backbone(BackboneConfig(name="resnet8", weights=None, image_size=16))
    path = tmp_path / "init.weights.h5"
    reference.model.save_weights(str(path))
    recipe["backbone"]["weights"] = str(path)
    result = tltk.train(recipe)
    trained = result.task_model.backbone.model
    for a, b in zip(reference.model.weights, trained.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def _files(run: Path) -> dict[str, bytes]:
    """A run folder's files (not the lock file, which names its latest owner)."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def _train_cmd(recipe_path):
    code = "import sys; from tltk.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "train", str(recipe_path)]


@pytest.mark.slow
def test_killed_run_resumes_at_the_same_phase_and_epoch(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, small=True)
    recipe["train"]["steps_per_epoch"] = 30  # long enough epochs to be killed in the middle
    # XLA and the test-time flip, as recipes/fashion_mnist_full.yaml trains and evaluates: the
    # resumed run recompiles and evaluates like any other (test_faults.py checks resumes to
    # 1e-6 without XLA, which op determinism turns off). Not its `train.threads`: this process
    # resumes, and its TensorFlow runs already (test_hardware.py sets threads in a fresh one).
    recipe["train"]["jit_compile"] = True
    recipe["evaluate"] = {"tta": "flip"}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        _train_cmd(path),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    runs = tmp_path / "runs" / "tiny"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and first.poll() is None:
        states = list(runs.glob("*/state.json"))
        if states:
            phases = json.loads(states[0].read_text())["phases"]
            if len(phases) == 2 and phases[1].get("end_epoch", 0) >= 3:  # one epoch into phase 2
                first.send_signal(signal.SIGKILL)
                killed_at = phases[1]["end_epoch"]
                break
        time.sleep(0.05)
    first.wait()
    assert killed_at is not None, first.stdout.read()[-3000:]
    assert first.returncode == -signal.SIGKILL
    # Resumed in this process (the kill is what needs a process of its own): it sees only
    # what the killed one left on disk.
    log = train_in_this_process(capsys, path)
    assert "Resuming run" in log
    assert "jit_compile on" in log
    assert "Epoch 1/" not in log  # the finished head phase is not redone
    assert f"Epoch {killed_at + 1}/6" in log and f"Epoch {killed_at}/6" not in log
    run_dirs = [p for p in runs.iterdir() if not p.is_symlink()]
    assert len(run_dirs) == 1  # resumed in place, no new run folder
    state = json.loads((run_dirs[0] / "state.json").read_text())
    assert state["finished"]
    assert [(p["start_epoch"], p["end_epoch"]) for p in state["phases"]] == [(0, 2), (2, 6)]
    from tltk.plots import read_history_csv

    assert read_history_csv(run_dirs[0] / "history.csv")["epoch"] == [0, 1, 2, 3, 4, 5]
    assert not (run_dirs[0] / "backup" / "phase1").exists()
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())  # evaluated with the flip
    assert metrics["split"] == "test" and metrics["n"] > 0 and np.isfinite(metrics["loss"])


def test_bad_phase_group_is_a_clear_error(tmp_path):
    recipe = tiny_recipe(tmp_path)
    recipe["phases"][0]["epochs"] = 0  # the error comes when phase 1 is compiled
    recipe["phases"][1]["train"] = ["blokc4"]
    with pytest.raises(ValueError, match=r"phases\[1\]\.train: unknown group 'blokc4'.*'block4'"):
        tltk.train(recipe)


def test_class_weight_balanced_and_named(tmp_path):
    from tltk import tasks
    from tltk.class_weights import class_weight
    from tltk.recipe import load_recipe

    recipe = load_recipe(tiny_recipe(tmp_path))
    data = make_image_folder(tmp_path / "imb", {"a": 4, "b": 12}, size=16)
    recipe = load_recipe(
        {**recipe.model_dump(mode="json"), "data": {"path": str(data)}},
        ["head.class_weight=balanced"],
    )
    loaded = tasks.load_data(recipe)
    weights = class_weight(recipe, loaded)
    assert weights[0] > 1 > weights[1]
    bad = load_recipe(recipe.model_dump(mode="json"), ["head.class_weight={zebra: 2}"])
    with pytest.raises(ValueError, match="zebra"):
        class_weight(bad, loaded)


def test_a_run_that_fails_before_training_leaves_nothing_to_resume(tmp_path):
    recipe = tiny_recipe(tmp_path)
    recipe["data"]["path"] = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="does not exist"):
        tltk.train(recipe)
    assert not [p for p in (tmp_path / "runs" / "tiny").iterdir()]  # no folder left behind
    # A resumed run that never trained and fails again is marked failed and skipped later.
    from tltk.recipe import load_recipe
    from tltk.runs import open_run

    run = open_run(load_recipe(recipe))
    run.close()
    with pytest.raises(ValueError, match="does not exist"):
        tltk.train(recipe)
    state = json.loads((run.dir / "state.json").read_text())
    assert "does not exist" in state["failed"]
    fresh = open_run(load_recipe(recipe))
    assert fresh.dir != run.dir and fresh.created
    fresh.close()


def test_run_dir_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a tltk run"):
        tltk.train(tiny_recipe(tmp_path), run_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_only_a_run_in_its_recipes_run_folder_moves_latest(tmp_path):
    from tltk.runs import open_run

    recipe = tltk.load_recipe(tiny_recipe(tmp_path))
    root = Path(recipe.train.runs_dir) / recipe.name
    elsewhere = tmp_path / "search" / "trials"
    elsewhere.mkdir(parents=True)
    (elsewhere / "latest").symlink_to("theirs")  # a link of the user's, named so
    for run_dir in (elsewhere / "0", root / "mine"):
        run = open_run(recipe, run_dir=run_dir)
        run.finish()
        run.close()
    assert os.readlink(elsewhere / "latest") == "theirs"
    assert not any(p.name.startswith(".latest") for p in elsewhere.iterdir())
    assert os.readlink(root / "latest") == "mine"
    resumed = open_run(recipe, run_dir=elsewhere / "0")  # resumed: the same rule
    resumed.finish()
    resumed.close()
    assert os.readlink(elsewhere / "latest") == "theirs"
