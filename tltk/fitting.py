"""Training a run's phases: the model in the strategy's scope, then each phase compiled and fit.

Each phase starts from the previous phase's saved weights and, when killed, resumes from its
last epoch's backup on the same batches (`build_pipeline`'s training stream is a function of
the epoch) with what its callbacks remembered (`CallbackState`). A phase is recorded as done,
and its weights saved, only when its weights are finite.

Under several workers every worker runs this same code in lockstep; where the chief reads
progress or weights from its run folder, the other workers get them from the chief
(tltk/multiworker.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltk import phases as ph
from tltk import tasks
from tltk.callback_state import CallbackState, backed_up_epoch
from tltk.callbacks import TrainingDiverged, ValidationMetrics, phase_callbacks
from tltk.data import LabelledData
from tltk.data.pipeline import batches_per_pass
from tltk.hardware import Hardware
from tltk.io import save_weights_atomic
from tltk.log import say as _say
from tltk.model import TaskModel
from tltk.multiworker import FollowChief, from_chief, share_variables
from tltk.recipe import PhaseConfig, Recipe
from tltk.runs import Run
from tltk.strategy import Role, describe


@dataclass
class Fit:
    """What every phase of one run trains with."""

    recipe: Recipe
    run: Run
    task_model: TaskModel
    data: LabelledData
    strategy: tf.distribute.Strategy
    role: Role
    hardware: Hardware
    train_batch: int
    steps: int
    """Optimizer steps per epoch."""
    validation: ValidationMetrics | None
    class_weight: dict[int, float] | None
    trained: set[int] = field(default_factory=set)
    """The phases this process trained (so a worker has their weights in its own folder)."""
    train_model: keras.Model | None = None
    """What `fit` trains: the task model itself, or a model wrapping it (a continue run's
    `DistillingModel`); the run saves the task model's weights either way."""

    def __post_init__(self) -> None:
        if self.train_model is None:
            self.train_model = self.task_model.model


def prepare(
    recipe: Recipe,
    run: Run,
    data: LabelledData,
    strategy: tf.distribute.Strategy,
    role: Role,
    hardware: Hardware,
) -> Fit:
    """Model in the strategy's scope, batch sizes, validation and class weights; what the
    hardware made of the recipe's `auto` values is logged and kept in RUN/state.json."""
    replicas = strategy.num_replicas_in_sync
    global_batch = hardware.global_batch
    _say(f"Strategy: {describe(strategy)}; global batch {global_batch}")
    _say(f"Hardware: {hardware.describe()}")
    run.state["hardware"] = hardware.as_dict()
    run.save()
    with strategy.scope():
        if recipe.continue_from is not None:
            from tltk.continual.model import continue_models

            task_model, train_model = continue_models(recipe, run, data)
        else:
            task_model = tasks.build_task_model(recipe, data)
            train_model = task_model.model
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
    return Fit(
        recipe=recipe,
        run=run,
        task_model=task_model,
        data=data,
        strategy=strategy,
        role=role,
        hardware=hardware,
        train_batch=train_batch,
        steps=recipe.train.steps_per_epoch or per_pass,
        validation=validation,
        class_weight=tasks.class_weight(recipe, data),
        train_model=train_model,
    )


def first_batch_size(n: int, global_batch: int, replicas: int) -> int:
    """The training batch size for a split of `n` examples under `replicas` replicas.

    Under several replicas every batch must split evenly (the remainder is dropped), so a
    split smaller than one global batch gets the largest batch that does.
    """
    if replicas == 1 or n >= global_batch:
        return global_batch
    return max(replicas, n - n % replicas)


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
    run, recipe, model = fit.run, fit.recipe, fit.task_model.model
    state = run.phase(index)
    backup = run.dir / "backup" / f"phase{index}"
    start, first, done = _progress(fit, index, backup)
    if done:
        return
    if index:  # a phase starts from the previous phase's result, in this process or not
        load_phase_result(fit, index - 1)
    state.update(start_epoch=start, started=True)
    run.save()
    train_groups = _compile(fit, index, phase)
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
        callbacks = phase_callbacks(recipe, run, index, phase, validation=fit.validation)
        fit.train_model.fit(
            train_ds,
            epochs=start + phase.epochs,
            initial_epoch=first,  # where the backup (the chief's, under several workers) ends
            steps_per_epoch=fit.steps,
            class_weight=fit.class_weight,
            callbacks=_follow_chief(fit, callbacks, resumed=first > start),
            shuffle=False,  # the pipeline shuffles, by epoch
            verbose=recipe.train.verbose,
        )
    _check_finite(model, state["name"])
    state.setdefault("end_epoch", start)
    phase_weights(run, index).parent.mkdir(exist_ok=True)
    save_weights_atomic(model, phase_weights(run, index))
    fit.trained.add(index)
    state["done"] = True
    run.save()
    _remove_backup(backup)


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


def _compile(fit: Fit, index: int, phase: PhaseConfig) -> list[str]:
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
        fit.train_model.compile(
            optimizer=optimizer,
            loss=tasks.loss(recipe),
            metrics=tasks.metrics(recipe, task_model),
            jit_compile=fit.hardware.jit_compile,
        )
    used = bool(task_model.model.jit_compile)  # Keras turns XLA off for a model without it
    if used != fit.run.state["hardware"]["jit_compile"]:
        _say(f"jit_compile {'on' if used else 'off'}: Keras' choice for this model")
        fit.run.state["hardware"]["jit_compile"] = used
        fit.run.save()
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


def phase_weights(run: Run, index: int) -> Path:
    return run.dir / "weights" / f"phase{index}.weights.h5"


def _remove_backup(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
