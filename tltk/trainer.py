"""recipe -> data -> model -> phases -> fit -> evaluate -> export, in one run folder."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltk import phases as ph
from tltk import tasks
from tltk.callbacks import phase_callbacks
from tltk.data import LabelledData
from tltk.data.images import write_split_manifest
from tltk.io import atomic_write_json
from tltk.model import TaskModel
from tltk.plots import plot_learning_curves, read_history_csv
from tltk.recipe import Recipe, load_recipe
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
    """Run a whole recipe. Re-running an unfinished recipe resumes at its phase and epoch."""
    recipe = as_recipe(recipe, overrides)
    run = open_run(recipe, run_dir=run_dir, resume=resume)
    if run.finished:
        raise FileExistsError(f"{run.dir} is a finished run; pass resume=False for a new one")
    resuming = bool(run.state["phases"])
    _say(f"{'Resuming' if resuming else 'Starting'} run {run.dir}")
    keras.utils.set_random_seed(recipe.seed)
    if recipe.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(recipe.train.precision)
    try:
        return _train(recipe, run)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(recipe: Recipe, run: Run) -> TrainResult:
    data = tasks.load_data(recipe, report_path=run.dir / "data_report.json")
    atomic_write_json(run.dir / "classes.json", data.class_names)
    write_split_manifest(data, run.dir / "splits.csv")
    strategy = make_strategy(recipe.train.strategy)
    global_batch = recipe.train.batch_size * strategy.num_replicas_in_sync
    _say(f"Strategy: {describe(strategy)}; global batch {global_batch}")
    with strategy.scope():
        task_model = tasks.build_task_model(recipe, data)
    model = task_model.model
    replicas = strategy.num_replicas_in_sync
    n_train, n_val = len(data.splits["train"]), len(data.splits.get("val", ()))
    train_batch = first_batch_size(n_train, global_batch, replicas)
    val_batch = first_batch_size(n_val, global_batch, replicas)
    train_ds = tasks.pipeline(recipe, data, "train", task_model, train_batch, training=True)
    val_ds = None
    if n_val:
        val_ds = tasks.pipeline(recipe, data, "val", task_model, val_batch, training=False)
    steps = recipe.train.steps_per_epoch or math.ceil(n_train / train_batch)
    if recipe.train.steps_per_epoch:
        train_ds = train_ds.repeat()
    class_weight = tasks.class_weight(recipe, data)
    phase_list = recipe.phases or ph.default_phases(len(task_model.backbone_groups))
    _sync_phase_state(run, phase_list)
    for index, phase in enumerate(phase_list):
        _run_phase(
            recipe, run, task_model, strategy, index, phase, train_ds, val_ds, steps, class_weight
        )

    model.save_weights(str(run.dir / "model.weights.h5"))
    if recipe.export.save_backbone and task_model.backbone.image_size is not None:
        task_model.backbone.model.save_weights(str(run.dir / "backbone.weights.h5"))
    tasks.save_run_assets(recipe, task_model, run.dir)

    from tltk.evaluate import format_summary  # noqa: PLC0415

    metrics = tasks.evaluate(recipe, task_model, data, recipe.evaluate.split, run.dir, global_batch)
    _say(format_summary(metrics))
    history_csv = run.dir / "history.csv"
    history = read_history_csv(history_csv) if history_csv.is_file() else {}
    if recipe.evaluate.plots and history:
        plot_learning_curves(
            run.dir / "history.csv", run.state["phases"], run.dir / "learning_curves.png"
        )
    export_path = None
    if recipe.export.enabled:
        export_path = tasks.export(recipe, task_model, data, metrics, run.dir)
        run.state["export"] = str(export_path)
    run.finish()
    _say(f"Run finished: {run.dir}" + (f"; exported {export_path}" if export_path else ""))
    return TrainResult(
        model, task_model, run.dir, history, metrics, data, export_path, run.state["phases"]
    )


def first_batch_size(n: int, global_batch: int, replicas: int) -> int:
    """The batch size for a split of `n` examples under `replicas` replicas.

    Keras 3 builds the metrics of a distributed fit/evaluate from the split's first batch,
    averaged across replicas, and that fails when the batch does not split evenly. A split
    smaller than one global batch therefore gets the largest batch that does.
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


def _run_phase(
    recipe, run, task_model, strategy, index, phase, train_ds, val_ds, steps, class_weight
):
    state = run.phase(index)
    if state["done"]:
        return
    model = task_model.model
    start = run.phase(index - 1)["end_epoch"] if index else 0
    if index:
        # After a restart the model is fresh: start from the previous phase's result.
        # BackupAndRestore then moves it on to this phase's last finished epoch, if any.
        model.load_weights(str(run.dir / "weights" / f"phase{index - 1}.weights.h5"))
    state.update(start_epoch=start, started=True)
    run.save()
    where = f"phases[{index}].train"
    train_groups = ph.trainable_groups(phase.train, task_model.backbone_groups, where)
    ph.set_trainable(task_model.groups, train_groups, phase.batchnorm)
    multipliers = ph.lr_multipliers(task_model.groups, train_groups, phase)
    with strategy.scope():
        optimizer = ph.make_optimizer(
            phase,
            steps_per_epoch=steps,
            multipliers=multipliers,
            clipnorm=recipe.train.clipnorm,
            global_clipnorm=recipe.train.global_clipnorm,
        )
        model.compile(
            optimizer=optimizer,
            loss=tasks.loss(recipe),
            metrics=tasks.metrics(recipe, task_model),
            jit_compile=recipe.train.jit_compile,
        )
    n_trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    _say(
        f"Phase {index + 1}/{len(run.state['phases'])} '{state['name']}': training "
        f"{['head'] + train_groups} ({n_trainable:,} parameters), epochs {start + 1}-"
        f"{start + phase.epochs}, lr {phase.learning_rate:g} ({phase.schedule}), "
        f"BatchNorm {phase.batchnorm}"
    )
    callbacks = phase_callbacks(recipe, run, index, phase, has_val=val_ds is not None)
    if phase.epochs:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=start + phase.epochs,
            initial_epoch=start,
            steps_per_epoch=steps,
            class_weight=class_weight,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles (and reshuffles every epoch)
            verbose=recipe.train.verbose,
        )
    state.setdefault("end_epoch", start)
    (run.dir / "weights").mkdir(exist_ok=True)
    model.save_weights(str(run.dir / f"weights/phase{index}.weights.h5"))
    state["done"] = True
    run.save()
    _remove_backup(run.dir / "backup" / f"phase{index}")


def _remove_backup(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _say(message: str) -> None:
    print(f"[tltk {time.strftime('%H:%M:%S')}] {message}", flush=True)
