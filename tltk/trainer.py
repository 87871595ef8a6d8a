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
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltk import phases as ph
from tltk import tasks
from tltk.callback_state import backed_up_epoch
from tltk.callbacks import TrainingDiverged, ValidationMetrics, phase_callbacks
from tltk.data import LabelledData
from tltk.data.images import write_split_manifest
from tltk.data.pipeline import batches_per_pass
from tltk.io import atomic_write_json
from tltk.model import TaskModel
from tltk.plots import plot_learning_curves, read_history_csv
from tltk.recipe import PhaseConfig, Recipe, load_recipe
from tltk.runs import Run, open_run
from tltk.strategy import describe, make_strategy


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


@dataclass
class _Fit:
    """What every phase of one run trains with."""

    recipe: Recipe
    run: Run
    task_model: TaskModel
    data: LabelledData
    strategy: tf.distribute.Strategy
    train_batch: int
    steps: int
    """Optimizer steps per epoch."""
    validation: ValidationMetrics | None
    class_weight: dict[int, float] | None


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
    data = tasks.load_data(recipe, report_path=run.dir / "data_report.json")
    atomic_write_json(run.dir / "classes.json", data.class_names)
    write_split_manifest(data, run.dir / "splits.csv")
    fit = _prepare(recipe, run, data)
    phase_list = recipe.phases or ph.default_phases(len(fit.task_model.backbone_groups))
    _sync_phase_state(run, phase_list)
    for index, phase in enumerate(phase_list):
        _run_phase(fit, index, phase)
    # Whichever process trained them, the run's result is the last phase's saved weights.
    model = fit.task_model.model
    model.load_weights(str(_phase_weights(run, len(phase_list) - 1)))
    _save_results(recipe, fit.task_model, run)

    from tltk.evaluate import format_summary  # noqa: PLC0415

    replicas = fit.strategy.num_replicas_in_sync
    metrics = tasks.evaluate(
        recipe, fit.task_model, data, recipe.evaluate.split, run.dir,
        recipe.train.batch_size * replicas, replicas=replicas,
    )  # fmt: skip
    _say(format_summary(metrics))
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


def _prepare(recipe: Recipe, run: Run, data: LabelledData) -> _Fit:
    """Strategy, model in its scope, batch sizes, validation and class weights."""
    strategy = make_strategy(recipe.train.strategy)
    replicas = strategy.num_replicas_in_sync
    global_batch = recipe.train.batch_size * replicas
    _say(f"Strategy: {describe(strategy)}; global batch {global_batch}")
    with strategy.scope():
        task_model = tasks.build_task_model(recipe, data)
    n_train = len(data.splits["train"])
    train_batch = first_batch_size(n_train, global_batch, replicas)
    remainder = "drop" if replicas > 1 else "keep"
    per_pass = batches_per_pass(n_train, train_batch, remainder)
    if replicas > 1 and n_train % train_batch:
        _say(
            f"{describe(strategy)}: every replica gets whole batches, so each epoch leaves out "
            f"{n_train % train_batch} of the {n_train} training examples (different ones each "
            "epoch: the split is reshuffled)"
        )
    validation = None
    if len(data.splits.get("val", ())):
        val_ds = tasks.pipeline(
            recipe, data, "val", task_model, global_batch, training=False, replicas=replicas
        )
        validation = ValidationMetrics(
            val_ds,
            tasks.targets(recipe, data, "val"),
            tasks.loss(recipe),
            tasks.metrics(recipe, task_model),
        )
    return _Fit(
        recipe=recipe,
        run=run,
        task_model=task_model,
        data=data,
        strategy=strategy,
        train_batch=train_batch,
        steps=recipe.train.steps_per_epoch or per_pass,
        validation=validation,
        class_weight=tasks.class_weight(recipe, data),
    )


def first_batch_size(n: int, global_batch: int, replicas: int) -> int:
    """The training batch size for a split of `n` examples under `replicas` replicas.

    Under several replicas every batch must split evenly (the remainder is dropped), so a
    split smaller than one global batch gets the largest batch that does.
    """
    if replicas == 1 or n >= global_batch:
        return global_batch
    return max(replicas, n - n % replicas)


def _sync_phase_state(run: Run, phase_list: list) -> None:
    phases_state = run.state["phases"]
    if not phases_state:
        run.state["phases"] = [
            {"name": p.name or f"phase{i}", "train": p.train, "done": False}
            for i, p in enumerate(phase_list)
        ]
        run.save()
    elif len(phases_state) != len(phase_list):
        raise RuntimeError(f"{run.dir}: recorded phases do not match the recipe's; start a new run")


def _run_phase(fit: _Fit, index: int, phase: PhaseConfig) -> None:
    run, recipe, model = fit.run, fit.recipe, fit.task_model.model
    state = run.phase(index)
    if state["done"]:
        return
    start = run.phase(index - 1)["end_epoch"] if index else 0
    if index:  # a phase starts from the previous phase's result, in this process or not
        model.load_weights(str(_phase_weights(run, index - 1)))
    state.update(start_epoch=start, started=True)
    run.save()
    train_groups = _compile(fit, index, phase)
    backup = run.dir / "backup" / f"phase{index}"
    first = backed_up_epoch(backup) or start  # where BackupAndRestore will resume fit
    n_trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    _say(
        f"Phase {index + 1}/{len(run.state['phases'])} '{state['name']}': training "
        f"{['head'] + train_groups} ({n_trainable:,} parameters), epochs {first + 1}-"
        f"{start + phase.epochs}, lr {phase.learning_rate:g} ({phase.schedule}), "
        f"BatchNorm {phase.batchnorm}"
    )
    if phase.epochs:
        train_ds = tasks.pipeline(
            recipe, fit.data, "train", fit.task_model, fit.train_batch, training=True,
            replicas=fit.strategy.num_replicas_in_sync, start_batch=first * fit.steps,
        )  # fmt: skip
        model.fit(
            train_ds,
            epochs=start + phase.epochs,
            initial_epoch=start,
            steps_per_epoch=fit.steps,
            class_weight=fit.class_weight,
            callbacks=phase_callbacks(recipe, run, index, phase, validation=fit.validation),
            shuffle=False,  # the pipeline shuffles, by epoch
            verbose=recipe.train.verbose,
        )
    _check_finite(model, state["name"])
    state.setdefault("end_epoch", start)
    _phase_weights(run, index).parent.mkdir(exist_ok=True)
    save_weights_atomic(model, _phase_weights(run, index))
    state["done"] = True
    run.save()
    _remove_backup(backup)


def _compile(fit: _Fit, index: int, phase: PhaseConfig) -> list[str]:
    """Freeze/unfreeze the phase's groups and compile its optimizer in the strategy's scope."""
    task_model, recipe = fit.task_model, fit.recipe
    where = f"phases[{index}].train"
    train_groups = ph.trainable_groups(phase.train, task_model.backbone_groups, where)
    ph.set_trainable(task_model.groups, train_groups, phase.batchnorm)
    multipliers = ph.lr_multipliers(task_model.groups, train_groups, phase)
    with fit.strategy.scope():
        optimizer = ph.make_optimizer(
            phase,
            steps_per_epoch=fit.steps,
            multipliers=multipliers,
            clipnorm=recipe.train.clipnorm,
            global_clipnorm=recipe.train.global_clipnorm,
        )
        task_model.model.compile(
            optimizer=optimizer,
            loss=tasks.loss(recipe),
            metrics=tasks.metrics(recipe, task_model),
            jit_compile=recipe.train.jit_compile,
        )
    return train_groups


def _check_finite(model: keras.Model, phase_name: str) -> None:
    """A phase whose weights hold NaN/inf (TerminateOnNaN switched off) is never saved."""
    for weight in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
            raise TrainingDiverged(
                f"phase '{phase_name}' diverged: {weight.path} holds NaN or infinite values; "
                "nothing of this phase was saved. Try a lower learning_rate, "
                "train.global_clipnorm: 1.0, and train.precision: float32."
            )


def _save_results(recipe: Recipe, task_model: TaskModel, run: Run) -> None:
    save_weights_atomic(task_model.model, run.dir / "model.weights.h5")
    if recipe.export.save_backbone and task_model.backbone.image_size is not None:
        save_weights_atomic(task_model.backbone.model, run.dir / "backbone.weights.h5")
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
    from tltk.export import version_dirs  # noqa: PLC0415

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


def save_weights_atomic(model: keras.Model, path: Path) -> None:
    """`model.save_weights` to a temporary file beside `path`, renamed into place."""
    tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
    model.save_weights(str(tmp))
    tmp.replace(path)


def _phase_weights(run: Run, index: int) -> Path:
    return run.dir / "weights" / f"phase{index}.weights.h5"


def _history(run: Run) -> dict:
    path = run.dir / "history.csv"
    return read_history_csv(path) if path.is_file() else {}


def _remove_backup(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _say(message: str) -> None:
    print(f"[tltk {time.strftime('%H:%M:%S')}] {message}", flush=True)
