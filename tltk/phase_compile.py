"""Compiling one phase: its groups frozen or unfrozen, its optimizer, the task's loss and
metrics, in the run's strategy scope. Used by the phases' fits (tltk/fitting.py) and the
learning-rate range test of `learning_rate: auto` (tltk/lr_auto.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

from tltk import phases as ph
from tltk import tasks
from tltk.log import say
from tltk.recipe import PhaseConfig

if TYPE_CHECKING:
    from tltk.fit_setup import Fit


def compile_phase(
    fit: Fit, index: int, phase: PhaseConfig, model: keras.Model | None = None, *, ema: bool = True
) -> None:
    """Freeze/unfreeze the phase's groups and compile `model` (the task model, or the head
    alone on cached features) with the phase's optimizer in the strategy's scope; `ema`:
    with the recipe's `train.ema` (the range test keeps none)."""
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
            ema=recipe.train.ema if ema else None,
        )
        (model or fit.train_model).compile(
            optimizer=optimizer,
            loss=tasks.loss(recipe),
            metrics=tasks.metrics(recipe, task_model),
            jit_compile=fit.hardware.jit_compile,
        )
    used = bool((model or task_model.model).jit_compile)  # Keras turns XLA off without it
    if used != fit.run.state["hardware"]["jit_compile"]:
        say(f"jit_compile {'on' if used else 'off'}: Keras' choice for this model")
        fit.run.state["hardware"]["jit_compile"] = used
        fit.run.save()
