"""recipe -> data -> model -> phases -> fit -> evaluate -> export, in one run folder.

A run is a sequence of stages, each recorded in `RUN/state.json` when it is done, so a run
killed at any point and started again picks up where it stopped and ends as an uninterrupted
run would: a phase resumes from its last epoch's backup (BackupAndRestore) on the same batches
(the training stream is a function of the epoch, see `build_pipeline`); the model always
continues from the last finished phase's saved weights, never from a fresh model; evaluation
is repeated (it is deterministic); an export that reached its version folder is found again,
not repeated. A finished run started again is a no-op that says so.

Under TF_CONFIG (several workers) every worker runs the same recipe; the chief owns the run
folder, its lock, metrics, plots and the export, the others train in a scratch folder of their
own (`open_worker_scratch`) and take what a relaunched job restores from the chief.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from tltk import tasks
from tltk.continual.hooks import forgetting, keep_buffer, report_forgetting
from tltk.data import LabelledData
from tltk.data.images import write_split_manifest
from tltk.errors import TltkError
from tltk.features import SharedFeatures
from tltk.fit_setup import prepare
from tltk.fitting import load_phase_result, run_phase, sync_phase_state
from tltk.hardware import Hardware, choose, set_threads
from tltk.io import atomic_write_json, save_weights_atomic
from tltk.log import say as _say
from tltk.model import TaskModel
from tltk.multiworker import check_same_as_chief, from_chief
from tltk.plots import plot_learning_curves, read_history_csv
from tltk.recipe import Recipe, load_recipe
from tltk.runs import Run, open_run, open_worker_scratch
from tltk.strategy import Role, cluster_role, make_strategy


class WorkerLost(TltkError, RuntimeError):
    """A worker of a multi-worker job stopped, so the others cannot go on."""


@dataclass
class TrainResult:
    model: keras.Model
    task_model: TaskModel
    run_dir: Path
    history: dict[str, list[float]]
    metrics: dict
    data: LabelledData
    export_path: Path | None = None
    phases: list[dict] = field(default_factory=list)


def as_recipe(recipe: Recipe | str | Path | dict, overrides: list[str] | tuple = ()) -> Recipe:
    if isinstance(recipe, Recipe):
        return load_recipe(recipe.model_dump(mode="json"), overrides) if overrides else recipe
    return load_recipe(recipe, overrides)


def train(
    recipe: Recipe | str | Path | dict,
    *,
    overrides: list[str] | tuple = (),
    run_dir: str | Path | None = None,
    resume: bool = True,
    shared_features: SharedFeatures | None = None,
) -> TrainResult | None:
    """Run a whole recipe. Re-running an unfinished recipe resumes it where it stopped; a
    finished one is not trained again (`resume=False` starts a new run). `shared_features`:
    the backbone features of earlier runs of this process (a search's trials), to reuse.

    Under several workers (TF_CONFIG) every worker calls this with the same recipe; a worker
    other than the chief gets None when the chief's run had already finished (it has no run
    folder to show)."""
    recipe = as_recipe(recipe, overrides)
    # First: the thread pools and a multi-worker strategy's collective ops must be set up
    # before any other TensorFlow op runs (reading the data would be one).
    set_threads(recipe.train.threads)
    strategy = make_strategy(recipe.train.strategy)
    role = cluster_role(strategy)
    if role.is_chief:
        run = open_run(recipe, run_dir=run_dir, resume=resume)
    else:
        run = open_worker_scratch(recipe, role.name)
    try:
        with _explain_lost_worker(role):
            if from_chief(strategy, [run.finished])[0]:
                if role.is_chief:
                    return _finished(run)
                _say(f"{role.name}: the chief's run had already finished; nothing to do")
                return None
            if role.is_chief:
                _say(f"{'Resuming' if run.trained else 'Starting'} run {run.dir}")
            else:
                _say(f"{role.name}: training with the chief; own files in {run.dir} (temporary)")
            keras.utils.set_random_seed(recipe.seed)
            if recipe.train.deterministic:
                tf.config.experimental.enable_op_determinism()
            hardware = choose(recipe.train, strategy, role)
            with _dtype_policy(hardware.precision):
                try:
                    return _train(recipe, run, strategy, role, hardware, shared_features)
                except Exception as error:
                    run.fail(error)  # before any training: nothing left that looks like work
                    raise
    finally:
        run.close()


@contextlib.contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def _explain_lost_worker(role: Role) -> Iterator[None]:
    """A worker that stops (killed, out of memory) makes the others' next collective fail
    with UnavailableError (TensorFlow notices within seconds): say what to do."""
    try:
        yield
    except tf.errors.UnavailableError as error:
        if not role.multi_worker:
            raise
        raise WorkerLost(
            f"{role.name}: another worker of the job stopped ({error.message.splitlines()[0]}); "
            "relaunch every worker with the same command: the run resumes from the chief's "
            "last backup"
        ) from error


def _train(
    recipe: Recipe,
    run: Run,
    strategy: tf.distribute.Strategy,
    role: Role,
    hardware: Hardware,
    shared_features: SharedFeatures | None = None,
) -> TrainResult:
    data = tasks.load_data(recipe, report_path=run.dir / "data_report.json", run_dir=run.dir)
    atomic_write_json(run.dir / "classes.json", data.class_names)
    write_split_manifest(data, run.dir / "splits.csv")
    fit = prepare(recipe, run, data, strategy, role, hardware, shared_features)
    if fit.role.multi_worker:
        check_same_as_chief(fit.strategy, "data splits", _splits_digest(data))
    phase_list = fit.plan.phases
    sync_phase_state(run, phase_list)
    for index, phase in enumerate(phase_list):
        run_phase(fit, index, phase)
    # Still cached: computed with the final backbone (a phase that trains it clears the cache).
    train_features = None if recipe.head.hidden_units else fit.features.known("train")
    # Whichever process trained them, the run's result is the last phase's saved weights.
    load_phase_result(fit, len(phase_list) - 1)
    model = fit.task_model.model
    _save_results(recipe, fit.task_model, run)
    # replay.budget: for later continue runs
    keep_buffer(recipe, fit.task_model, data, run.dir, features=train_features)

    from tltk.evaluate import format_summary

    # A search's trials share the backbone's features: the test split's too, so that N trials
    # of head keys run the backbone over it once, not N times (the head on its features).
    shared_eval = fit.features.predict if fit.features.shared is not None else None
    metrics = tasks.evaluate(  # every worker: predictions are gathered from all replicas
        recipe, fit.task_model, data, recipe.evaluate.split, run.dir,
        fit.hardware.global_batch, replicas=fit.hardware.replicas,
        extra=forgetting(recipe, data, run), outputs_of=shared_eval,
    )  # fmt: skip
    fit.features.clear()
    _say(format_summary(metrics))
    history = _history(run)
    if not fit.role.is_chief:
        _say(f"{fit.role.name}: done; the chief writes the run's results and the export")
        return TrainResult(model, fit.task_model, run.dir, history, metrics, data)
    report_forgetting(recipe, metrics, run)
    if recipe.evaluate.plots and history:
        plot_learning_curves(
            run.dir / "history.csv", run.state["phases"], run.dir / "learning_curves.png"
        )
    export_path = _export(recipe, fit.task_model, data, metrics, run, fit.role)
    run.finish()
    _say(f"Run finished: {run.dir}" + (f"; exported {export_path}" if export_path else ""))
    return TrainResult(
        model, fit.task_model, run.dir, history, metrics, data, export_path, run.state["phases"]
    )


def _splits_digest(data: LabelledData) -> bytes:
    """What must be the same on every worker: each split's examples (where each came from; a
    text itself), in order, with their labels. Not RUN/splits.csv, which names the copies a
    run makes of images it converts, in its own folder."""
    digest = hashlib.sha256()
    for name, split in data.splits.items():
        for i in range(len(split)):
            text = str(split.examples[i]) if split.kind == "text" else ""
            digest.update(f"{name}\0{split.origin(i)}\0{text}\0{split.labels[i]!r}\n".encode())
    return digest.digest()


def _save_results(recipe: Recipe, task_model: TaskModel, run: Run) -> None:
    save_weights_atomic(task_model.model, run.dir / "model.weights.h5")
    tasks.save_run_assets(recipe, task_model, run.dir)


def _export(
    recipe: Recipe, task_model: TaskModel, data: LabelledData, metrics: dict, run: Run, role: Role
) -> Path | None:
    """Export once per run: a version this run already wrote (killed before it was recorded)
    is found by its model card and recorded, not written again. Under several workers the
    chief exports a copy of the model built outside the strategy, from the run's saved
    weights: the other workers have gone on, and the trained model's variables would ask
    them to take part in reading them."""
    if not recipe.export.enabled:
        return None
    recorded = run.state.get("export")
    path = Path(recorded) if recorded and Path(recorded).is_dir() else _find_export(recipe, run)
    if path is None:
        if role.multi_worker:
            task_model = tasks.load_run(run.dir)[1]
        path = tasks.export(recipe, task_model, data, metrics, run.dir)
    run.state["export"] = str(path)
    run.save()
    return path


def _find_export(recipe: Recipe, run: Run) -> Path | None:
    from tltk.export import version_dirs

    root = Path(recipe.export.dir) / (recipe.export.name or recipe.name)
    for _, folder in sorted(version_dirs(root).items()):
        card = folder / "assets.extra" / "model_card.json"
        if card.is_file():
            written_by = json.loads(card.read_text()).get("run_dir")
            if written_by and Path(written_by).resolve() == run.dir.resolve():
                _say(f"Found this run's export from before the restart: {folder}")
                return folder
    return None


def _finished(run: Run) -> TrainResult:
    """A finished run started again: nothing to train; its results, loaded."""
    recipe, task_model, class_names = tasks.load_run(run.dir)
    metrics = json.loads((run.dir / "metrics.json").read_text())
    export = run.state.get("export")
    _say(
        f"Run {run.dir} already finished with this recipe; nothing to do "
        f"(pass --new, or resume=False, to train it again). Its export: {export or 'none'}"
    )
    shell = LabelledData(class_names=class_names, splits={}, multi_label=recipe.multi_label)
    return TrainResult(
        task_model.model,
        task_model,
        run.dir,
        _history(run),
        metrics,
        shell,
        Path(export) if export else None,
        run.state["phases"],
    )


def _history(run: Run) -> dict:
    path = run.dir / "history.csv"
    return read_history_csv(path) if path.is_file() else {}
