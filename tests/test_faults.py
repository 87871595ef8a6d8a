"""Fault injection: a run killed at any stage and started again ends as an uninterrupted run;
a diverged phase saves nothing; one process owns a run folder.

The uninterrupted reference and every killed-then-resumed run train the same deterministic
recipe (`train.deterministic: true`, no dropout, no augmentation) on the same images, so the
final weights must match to 1e-6 and the test metrics to 1e-6.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from helpers import make_image_folder, tiny_recipe

import tltk
from tltk.callbacks import TrainingDiverged

DRIVER = Path(__file__).with_name("fault_driver.py")
TOL = 1e-6


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return make_image_folder(root / "images", {"a": 12, "b": 12, "c": 12}, size=32)


def _recipe(tmp_path: Path, images: Path, **train) -> Path:
    recipe = tiny_recipe(tmp_path, images, epochs=(2, 3), name="faulty")
    recipe["head"] = {"dropout": 0.0}
    recipe["train"].update(deterministic=True, **train)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _run(recipe: Path, stage: str = "none") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(DRIVER), str(recipe), stage],
        cwd=recipe.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def _result(tmp_path: Path) -> tuple[dict, dict, list[Path]]:
    """(model weights by path, numeric test metrics, export versions) of the one run under
    tmp_path. The model's own weights: a process that trained also saves its optimizer's."""
    runs = [p for p in (tmp_path / "runs" / "faulty").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, runs  # resumed in place, never a second run folder
    with h5py.File(runs[0] / "model.weights.h5") as f:
        weights = {}

        def keep(name, obj):
            if isinstance(obj, h5py.Dataset) and name.startswith("layers/"):
                weights[name] = obj[()]

        f.visititems(keep)
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    versions = sorted((tmp_path / "saved_models" / "faulty").glob("[0-9]*"))
    return weights, numbers, versions


@pytest.fixture(scope="module")
def reference(tmp_path_factory, images):
    tmp = tmp_path_factory.mktemp("reference")
    done = _run(_recipe(tmp, images))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return _result(tmp)


def _check_same_as_reference(tmp_path: Path, reference) -> None:
    weights, metrics, versions = _result(tmp_path)
    ref_weights, ref_metrics, _ = reference
    assert weights.keys() == ref_weights.keys()
    for name, value in ref_weights.items():
        np.testing.assert_allclose(weights[name], value, atol=TOL, err_msg=name)
    assert metrics == pytest.approx(ref_metrics, abs=TOL)
    assert [v.name for v in versions] == ["1"]  # exported exactly once


@pytest.mark.slow
@pytest.mark.parametrize(
    "stages",
    [
        ["mid_epoch"],
        ["between_phases"],
        # After training: killed in evaluation, then before the export, then after its version
        # folder appeared but before the run recorded it; each re-run trains nothing.
        ["evaluation", "export_start", "export_written"],
    ],
    ids=lambda stages: "+".join(stages),
)
def test_killed_at_any_stage_resumes_to_the_uninterrupted_result(
    tmp_path, images, reference, stages
):
    recipe = _recipe(tmp_path, images)
    for n, stage in enumerate(stages):
        killed = _run(recipe, stage)
        assert killed.returncode == -signal.SIGKILL, (killed.stdout + killed.stderr)[-3000:]
        if n:
            assert "Resuming run" in killed.stdout and "Epoch " not in killed.stdout
    resumed = _run(recipe)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert "Resuming run" in log  # the dead process's lock did not outlive it
    if stages[0] == "evaluation":
        assert "Epoch " not in log  # nothing is trained again
        assert "Found this run's export from before the restart" in log
    _check_same_as_reference(tmp_path, reference)
    # Started again once finished: a no-op that says so.
    again = _run(recipe)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert [v.name for v in _result(tmp_path)[2]] == ["1"]


class PoisonWeights:
    """Makes every weight NaN at the start of one epoch, as a runaway update would."""

    def __new__(cls, epoch: int):
        import keras

        class Poison(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                if e == epoch:
                    for w in self.model.trainable_weights:
                        w.assign(np.full(w.shape, np.nan, dtype="float32"))

        return Poison()


@pytest.mark.slow
def test_diverged_phase_saves_nothing_and_a_rerun_retries_from_the_last_good_epoch(
    tmp_path, images, monkeypatch
):
    from tltk import fitting

    recipe = _recipe(tmp_path, images)
    make_callbacks = fitting.phase_callbacks

    def poisoned(recipe, run, index, phase, **kw):
        callbacks = make_callbacks(recipe, run, index, phase, **kw)
        return callbacks + [PoisonWeights(3)] if index == 1 else callbacks

    monkeypatch.setattr(fitting, "phase_callbacks", poisoned)
    with pytest.raises(TrainingDiverged, match=r"phase 'top' diverged.*epoch 4, batch 1.*"
                       r"learning_rate.*clipnorm.*float32"):  # fmt: skip
        tltk.train(recipe)
    run = next(p for p in (tmp_path / "runs" / "faulty").iterdir() if not p.is_symlink())
    state = json.loads((run / "state.json").read_text())
    assert state["phases"][0]["done"] and not state["phases"][1]["done"]
    assert state["phases"][1]["end_epoch"] == 3  # epoch 4 never finished
    assert not (run / "weights" / "phase1.weights.h5").exists()
    assert not (run / "model.weights.h5").exists() and not state.get("finished")
    history = tltk.plots.read_history_csv(run / "history.csv")
    assert history["epoch"] == [0, 1, 2] and np.all(np.isfinite(history["loss"]))
    # The re-run retries the phase from epoch 4, from the last good backup, and finishes.
    monkeypatch.setattr(fitting, "phase_callbacks", make_callbacks)
    result = tltk.train(recipe)
    assert result.run_dir == run and result.history["epoch"] == [0, 1, 2, 3, 4]
    assert all(np.all(np.isfinite(np.asarray(w))) for w in result.model.weights)


@pytest.mark.slow
def test_second_process_on_a_running_recipe_touches_nothing(tmp_path, images, reference):
    recipe = _recipe(tmp_path, images)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [sys.executable, str(DRIVER), str(recipe), "none"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 200
    while time.time() < deadline and not list((tmp_path / "runs").glob("faulty/*/weights")):
        time.sleep(0.1)  # the first process is training (its head phase is done)
    run = next((tmp_path / "runs" / "faulty").iterdir())
    second = _run(recipe)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"{run} is in use by process {first.pid}" in second.stderr
    assert "--new" in second.stderr
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    _check_same_as_reference(tmp_path, reference)  # one run folder, one export, same result


def test_export_and_evaluate_of_a_run_in_use_are_refused(tmp_path, images):
    """Commands that write into a run take its lock too (flock: two open files conflict even
    within one process, as they would across processes)."""
    from tltk.recipe import load_recipe
    from tltk.runs import RunLocked, open_run

    run = open_run(load_recipe(_recipe(tmp_path, images)))
    try:
        with pytest.raises(RunLocked, match=rf"{run.dir} is in use by process {os.getpid()}"):
            tltk.export_run(run.dir)
        with pytest.raises(RunLocked, match="--new"):
            tltk.evaluate_run(run.dir)
        assert not (tmp_path / "saved_models").exists()
    finally:
        run.close()
