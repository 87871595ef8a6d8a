"""Training a run's phases, each compiled and fit with what `tltk.fit_setup.prepare` set up.

Each phase starts from the previous phase's saved weights (the first, from the head start:
`tltk.head_start`) and, when killed, resumes from its last epoch's backup on the same batches
(`build_pipeline`'s training stream is a function of the epoch) with what its callbacks
remembered (`CallbackState`). A phase that trains only the head on a frozen backbone fits the
head alone on cached backbone features (`tltk.features`), with the same batches, validation,
callbacks and backups. A phase is recorded as done, and its weights saved, only when its
weights are finite.

Under several workers every worker runs this same code in lockstep; where the chief reads
progress or weights from its run folder, the other workers get them from the chief
(tltk/multiworker.py).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from tltk import phases as ph
from tltk import plan as pl
from tltk import tasks
from tltk.callback_state import CallbackState, backed_up_epoch
from tltk.callbacks import ValidationMetrics, check_finite_weights, phase_callbacks
from tltk.features import cache_decision
from tltk.fit_setup import Fit
from tltk.head_start import start_head
from tltk.io import save_weights_atomic
from tltk.log import say as _say
from tltk.lr_auto import resolve_learning_rate
from tltk.multiworker import FollowChief, from_chief, share_variables
from tltk.phase_compile import compile_phase as _compile
from tltk.recipe import PhaseConfig
from tltk.runs import Run


def sync_phase_state(run: Run, phase_list: list) -> None:
    phases_state = run.state["phases"]
    if not phases_state:
        run.state["phases"] = [
            {"name": p.name or f"phase{i}", "train": p.train, "done": False}
            for i, p in enumerate(phase_list)
        ]
        run.save()
    elif len(phases_state) != len(phase_list):
        raise RuntimeError(f"{run.dir}: recorded phases do not match the recipe's; start a new run")


def run_phase(fit: Fit, index: int, phase: PhaseConfig) -> None:
    run, model = fit.run, fit.task_model.model
    state = run.phase(index)
    backup = run.dir / "backup" / f"phase{index}"
    start, first, done = _progress(fit, index, backup)
    if done:
        return
    if index:  # a phase starts from the previous phase's result, in this process or not
        load_phase_result(fit, index - 1)
    else:
        start_head(fit)
    phase = resolve_learning_rate(fit, index, phase)
    state.update(start_epoch=start, started=True)
    run.save()
    where = f"phases[{index}].train"
    train_groups = ph.trainable_groups(phase.train, fit.task_model.backbone_groups, where)
    cached = cache_decision(fit.recipe, fit.task_model, train_groups)
    if fit.train_model is not model:  # a continue run's distillation needs the whole model
        cached = None
    length = pl.phase_length(phase, fit.steps)
    trained = fit.features.split_model.head if cached else fit.train_model
    _compile(fit, index, phase, trained)
    n_trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    _say(
        f"Phase {index + 1}/{len(run.state['phases'])} '{state['name']}': training "
        f"{['head'] + train_groups} ({n_trainable:,} parameters), epochs {first + 1}-"
        f"{start + length.epochs} of {length.steps_per_epoch} steps, lr "
        f"{phase.learning_rate:g} ({phase.schedule}), BatchNorm {phase.batchnorm}"
        + (f"; on cached features: {cached}" if cached else "")
    )
    if length.epochs:
        _fit(fit, index, phase, trained, cached is not None, start, first, length)
    if train_groups:  # the backbone changed: its cached features are stale
        fit.features.clear()
    check_finite_weights(model, state["name"])
    state.setdefault("end_epoch", start)
    phase_weights(run, index).parent.mkdir(exist_ok=True)
    save_weights_atomic(model, phase_weights(run, index))
    fit.trained.add(index)
    state["done"] = True
    run.save()
    _remove_backup(backup)


def _fit(fit: Fit, index: int, phase, trained, cached: bool, start: int, first: int, length):
    """`trained.fit` for the phase's epochs from `first`: the task model on the training
    pipeline, or (`cached`) its head on the cached features of the same batches."""
    recipe, replicas = fit.recipe, fit.strategy.num_replicas_in_sync
    # Epoch e of this phase starts at batch start*steps + (e - start)*its own epoch length.
    start_batch = start * fit.steps + (first - start) * length.steps_per_epoch
    validation = fit.validation
    if cached:
        train_ds = fit.features.pipeline(
            "train", fit.train_batch, training=True, start_batch=start_batch
        )
        if validation is not None:
            val_ds = fit.features.pipeline("val", fit.hardware.global_batch, training=False)
            validation = ValidationMetrics(
                val_ds, validation.targets, tasks.loss(recipe),
                tasks.metrics(recipe, fit.task_model),
            )  # fmt: skip
    else:
        train_ds = tasks.pipeline(
            recipe, fit.data, "train", fit.task_model, fit.train_batch, training=True,
            replicas=replicas, start_batch=start_batch,
        )  # fmt: skip
    callbacks = phase_callbacks(
        recipe, fit.run, index, phase, validation=validation, saves=fit.task_model.model,
        resumed=first > start,
    )  # fmt: skip
    trained.fit(
        train_ds,
        epochs=start + length.epochs,
        initial_epoch=first,  # where the backup (the chief's, under several workers) ends
        steps_per_epoch=length.steps_per_epoch,
        class_weight=fit.class_weight,
        callbacks=_follow_chief(fit, callbacks, resumed=first > start),
        shuffle=False,  # the pipeline shuffles, by epoch
        verbose=recipe.train.verbose,
    )


def _progress(fit: Fit, index: int, backup: Path) -> tuple[int, int, bool]:
    """(first epoch, epoch `fit` resumes at, done) of phase `index`, as the chief's run folder
    says, on every worker: a worker's own folder holds no progress of an earlier launch."""
    run = fit.run
    state = run.phase(index)
    start = run.phase(index - 1)["end_epoch"] if index else 0
    first = backed_up_epoch(backup) or start
    ours = [start, first, state.get("end_epoch", start), state["done"]]
    start, first, end, done = (int(v) for v in from_chief(fit.strategy, np.array(ours, "int64")))
    if done:
        state.update(done=True, end_epoch=end)
    return start, first, bool(done)


def load_phase_result(fit: Fit, index: int) -> None:
    """Give the model the weights phase `index` ended with, on every worker. The chief reads
    them from the run folder; a worker that trained the phase in this launch has the same
    weights in its own folder; one that did not (a relaunched job) gets the chief's."""
    model = fit.task_model.model
    if fit.role.is_chief or index in fit.trained:
        model.load_weights(str(phase_weights(fit.run, index)))
    if index not in fit.trained:
        share_variables(fit.strategy, model.weights)


def _follow_chief(fit: Fit, callbacks: list, *, resumed: bool) -> list:
    """Under several workers, `FollowChief` right after BackupAndRestore (see its docstring)."""
    if not fit.role.multi_worker:
        return callbacks
    state = next((c for c in callbacks if isinstance(c, CallbackState)), None)
    backup = [isinstance(c, keras.callbacks.BackupAndRestore) for c in callbacks]
    at = backup.index(True) + 1 if any(backup) else len(callbacks)
    return [*callbacks[:at], FollowChief(fit.strategy, resumed, state), *callbacks[at:]]


def phase_weights(run: Run, index: int) -> Path:
    return run.dir / "weights" / f"phase{index}.weights.h5"


def _remove_backup(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
