"""recipe -> data -> model -> phases -> fit -> evaluate -> export, in one run folder.

A run is a sequence of stages, each recorded in `RUN/state.json` when it is done, so a run
killed at any point and started again picks up where it stopped and ends as an uninterrupted
run would: a phase resumes from its last epoch's backup (BackupAndRestore) on the same batches
(the training stream is a function of the epoch, see `build_pipeline`); the model always
continues from the last finished phase's saved weights, never from a fresh model; evaluation
is repeated (it is deterministic); an export that reached its version folder is found again,
not repeated. A finished run started again is a no-op that says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from tltk import phases as ph
from tltk import tasks
from tltk.continual.hooks import forgetting, keep_buffer, report_forgetting
from tltk.data import LabelledData
from tltk.data.images import write_split_manifest
from tltk.fitting import phase_weights, prepare, run_phase, sync_phase_state
from tltk.io import atomic_write_json, save_weights_atomic
from tltk.log import say as _say
from tltk.model import TaskModel
from tltk.plots import plot_learning_curves, read_history_csv
from tltk.recipe import Recipe, load_recipe
from tltk.runs import Run, open_run


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
) -> TrainResult:
    """Run a whole recipe. Re-running an unfinished recipe resumes it where it stopped; a
    finished one is not trained again (`resume=False` starts a new run)."""
    recipe = as_recipe(recipe, overrides)
    run = open_run(recipe, run_dir=run_dir, resume=resume)
    try:
        if run.finished:
            return _finished(run)
        _say(f"{'Resuming' if run.trained else 'Starting'} run {run.dir}")
        keras.utils.set_random_seed(recipe.seed)
        if recipe.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        previous_policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(recipe.train.precision)
        try:
            return _train(recipe, run)
        except Exception as error:
            run.fail(error)  # before any training: nothing left that looks like work
            raise
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
    finally:
        run.close()


def _train(recipe: Recipe, run: Run) -> TrainResult:
    data = tasks.load_data(recipe, report_path=run.dir / "data_report.json", run_dir=run.dir)
    atomic_write_json(run.dir / "classes.json", data.class_names)
    write_split_manifest(data, run.dir / "splits.csv")
    fit = prepare(recipe, run, data)
    phase_list = recipe.phases or ph.default_phases(len(fit.task_model.backbone_groups))
    sync_phase_state(run, phase_list)
    for index, phase in enumerate(phase_list):
        run_phase(fit, index, phase)
    # Whichever process trained them, the run's result is the last phase's saved weights.
    model = fit.task_model.model
    model.load_weights(str(phase_weights(run, len(phase_list) - 1)))
    _save_results(recipe, fit.task_model, run)
    keep_buffer(recipe, fit.task_model, data, run.dir)  # replay.budget: for later continue runs

    from tltk.evaluate import format_summary

    replicas = fit.strategy.num_replicas_in_sync
    metrics = tasks.evaluate(
        recipe, fit.task_model, data, recipe.evaluate.split, run.dir,
        recipe.train.batch_size * replicas, replicas=replicas,
        extra=forgetting(recipe, data, run),
    )  # fmt: skip
    _say(format_summary(metrics))
    report_forgetting(recipe, metrics, run)
    history = _history(run)
    if recipe.evaluate.plots and history:
        plot_learning_curves(
            run.dir / "history.csv", run.state["phases"], run.dir / "learning_curves.png"
        )
    export_path = _export(recipe, fit.task_model, data, metrics, run)
    run.finish()
    _say(f"Run finished: {run.dir}" + (f"; exported {export_path}" if export_path else ""))
    return TrainResult(
        model, fit.task_model, run.dir, history, metrics, data, export_path, run.state["phases"]
    )


def _save_results(recipe: Recipe, task_model: TaskModel, run: Run) -> None:
    save_weights_atomic(task_model.model, run.dir / "model.weights.h5")
    tasks.save_run_assets(recipe, task_model, run.dir)


def _export(
    recipe: Recipe, task_model: TaskModel, data: LabelledData, metrics: dict, run: Run
) -> Path | None:
    """Export once per run: a version this run already wrote (killed before it was recorded)
    is found by its model card and recorded, not written again."""
    if not recipe.export.enabled:
        return None
    recorded = run.state.get("export")
    path = Path(recorded) if recorded and Path(recorded).is_dir() else _find_export(recipe, run)
    if path is None:
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
