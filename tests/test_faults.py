"""Fault injection: a run killed at any stage and started again ends as an uninterrupted run;
a diverged phase saves nothing; one process owns a run folder.

The uninterrupted reference and every killed-then-resumed run train the same deterministic
recipe (`train.deterministic: true`, no dropout, no augmentation: its head phase trains on
cached features) on the same images, so the final weights must match to 1e-6 and the test
metrics to 1e-6.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from helpers import make_image_folder, tiny_recipe, train_in_this_process

import tltk
from tltk.callbacks import TrainingDiverged

DRIVER = Path(__file__).with_name("fault_driver.py")
TOL = 1e-6


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return make_image_folder(root / "images", {"a": 12, "b": 12, "c": 12}, size=16)


def _recipe(tmp_path: Path, images: Path, **train) -> Path:
    # resnet8 at 16 px: what is checked here is the run's bookkeeping, not the backbone, and
    # it traces, trains and exports in about half the CPU time of MobileNetV3-Small at 32 px.
    # verbose 2: each epoch Keras runs prints "Epoch N/5", which the checks below read.
    recipe = tiny_recipe(tmp_path, images, epochs=(2, 3), top="top:2", name="faulty")
    recipe["backbone"].update(name="resnet8", image_size=16)
    recipe["head"] = {"dropout": 0.0}
    recipe["train"].update(deterministic=True, verbose=2, **train)
    # The export is written and recorded as in any run; its parity check (a fresh TensorFlow
    # process for each export) is tested in test_export and test_cli.
    recipe["export"]["parity"] = False
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _driver(recipe: Path, stage: str) -> list[str]:
    return [sys.executable, str(DRIVER), str(recipe), stage]


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _run(recipe: Path, stage: str = "none") -> subprocess.CompletedProcess:
    return subprocess.run(
        _driver(recipe, stage),
        cwd=recipe.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )


def _weights(path: Path) -> dict[str, np.ndarray]:
    """The model's own weights in a .weights.h5 file (a process that trained also saves its
    optimizer's)."""
    weights = {}
    with h5py.File(path) as f:

        def keep(name, obj):
            if isinstance(obj, h5py.Dataset) and name.startswith("layers/"):
                weights[name] = obj[()]

        f.visititems(keep)
    return weights


def _run_dir(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs" / "faulty").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, runs  # resumed in place, never a second run folder
    return runs[0]


def _result(tmp_path: Path) -> tuple[dict, dict, list[Path]]:
    """(model weights by path, numeric test metrics, export versions) of the one run under
    tmp_path."""
    run = _run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    versions = sorted((tmp_path / "saved_models" / "faulty").glob("[0-9]*"))
    return _weights(run / "model.weights.h5"), numbers, versions


@dataclass
class Reference:
    tmp: Path
    weights: dict
    metrics: dict
    versions: list[Path]
    pid: int
    second: subprocess.CompletedProcess
    """A second process started on the recipe while the reference run was training."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, images) -> Reference:
    """The uninterrupted run of the recipe, in a process of its own. While it trains, a second
    process is started on the same recipe (its checks: test_second_process_...): one run
    instead of two, and that the second touched nothing shows in every comparison with this
    reference as well."""
    tmp = tmp_path_factory.mktemp("reference")
    recipe = _recipe(tmp, images)
    first = subprocess.Popen(
        _driver(recipe, "none"),
        cwd=tmp,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 200
    while time.time() < deadline and not list((tmp / "runs").glob("faulty/*/state.json")):
        time.sleep(0.1)  # the first process has opened the run (its training is ahead)
    second = _run(recipe)
    out, _ = first.communicate(timeout=400)
    assert first.returncode == 0, out[-3000:]
    return Reference(tmp, *_result(tmp), pid=first.pid, second=second)


def _check_same_as_reference(tmp_path: Path, reference: Reference) -> None:
    weights, metrics, versions = _result(tmp_path)
    assert weights.keys() == reference.weights.keys()
    for name, value in reference.weights.items():
        np.testing.assert_allclose(weights[name], value, atol=TOL, err_msg=name)
    assert metrics == pytest.approx(reference.metrics, abs=TOL)
    assert [v.name for v in versions] == ["1"]  # exported exactly once


# Each stage in turn, in one run: killed there, started again, killed at the next. Every
# process after the first resumes what the one before it left.
STAGES = [
    "mid_head_epoch",  # the head phase, on cached features: in its second epoch
    "between_phases",  # the head phase done, the next not compiled
    "mid_epoch",  # in the second epoch of the last phase
    # After training: killed in evaluation, then before the export, then after its version
    # folder appeared but before the run recorded it; these re-runs train nothing.
    "evaluation",
    "export_start",
    "export_written",
]


@pytest.mark.slow
def test_killed_at_every_stage_resumes_to_the_uninterrupted_result(
    tmp_path, images, reference, capsys
):
    recipe = _recipe(tmp_path, images)
    logs = {}
    for n, stage in enumerate(STAGES):
        killed = _run(recipe, stage)
        logs[stage] = log = killed.stdout
        assert killed.returncode == -signal.SIGKILL, (stage, (log + killed.stderr)[-3000:])
        assert ("Resuming run" in log) == (n > 0), stage
    # Killed in the head phase's second epoch: the next process redoes that epoch only, and
    # the finished head phase is the reference's.
    assert "Epoch 2/2" in logs["between_phases"] and "Epoch 1/2" not in logs["between_phases"]
    phase0 = _weights(_run_dir(tmp_path) / "weights" / "phase0.weights.h5")
    for name, value in _weights(_run_dir(reference.tmp) / "weights" / "phase0.weights.h5").items():
        np.testing.assert_allclose(phase0[name], value, atol=TOL, err_msg=name)
    # Killed between the phases: the next process starts the last phase at its first epoch.
    assert "Epoch 3/5" in logs["mid_epoch"] and "Epoch 2/2" not in logs["mid_epoch"]
    # Killed in the last phase's second epoch (4/5): resumed there, from its first's backup.
    assert "Epoch 4/5" in logs["evaluation"] and "Epoch 3/5" not in logs["evaluation"]
    assert "Epoch " not in logs["export_start"] + logs["export_written"]
    # The last restart in this process: it reads only what the killed ones left on disk.
    log = train_in_this_process(capsys, recipe)
    assert "Resuming run" in log  # the dead process's lock did not outlive it
    assert "Epoch " not in log  # nothing is trained again
    assert "Found this run's export from before the restart" in log
    _check_same_as_reference(tmp_path, reference)
    # Started again once finished: a no-op that says so.
    from tltk.cli import main

    assert main(["train", str(recipe)]) == 0
    assert "already finished" in capsys.readouterr().out
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
def test_second_process_on_a_running_recipe_touches_nothing(reference):
    second = reference.second
    run = _run_dir(reference.tmp)  # one run folder, one export (checked in the fixture)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"{run} is in use by process {reference.pid}" in second.stderr
    assert "--new" in second.stderr
    assert [v.name for v in reference.versions] == ["1"]


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
