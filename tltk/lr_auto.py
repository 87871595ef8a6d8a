"""`learning_rate: auto`: a phase's rate from the learning-rate range test (tltk/lr_finder.py),
run from the state the phase starts from, once per run, and recorded in the run folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tltk import lr_finder, tasks
from tltk.io import atomic_write_json, atomic_write_text
from tltk.log import say
from tltk.phase_compile import compile_phase
from tltk.plots import plot_lr_find
from tltk.recipe import PhaseConfig, load_recipe

if TYPE_CHECKING:
    from tltk.fit_setup import Fit


def resolve_learning_rate(fit: Fit, index: int, phase: PhaseConfig) -> PhaseConfig:
    """The phase with `learning_rate: auto` replaced by the range test's suggestion, found once
    per run: recorded in RUN/state.json and RUN/recipe.yaml (curve and plot in RUN/lr_find/),
    and reused as recorded when the run resumes."""
    if phase.learning_rate != "auto":
        return phase
    run, state = fit.run, fit.run.phase(index)
    if "learning_rate" not in state:
        result = find_learning_rate(fit, index, phase)
        folder = run.dir / "lr_find"
        title = f"{fit.recipe.name}, phases.{index} '{state['name']}' ({phase.train})"
        result.plot = plot_lr_find(result, folder / f"phase{index}.png", title)
        atomic_write_json(folder / f"phase{index}.json", result.to_json())
        state["learning_rate"] = result.suggestion
        state["lr_find"] = {"minimum": result.minimum, "steepest": result.steepest,
                            "steps": len(result.losses), "plot": str(result.plot)}  # fmt: skip
        resolved = load_recipe(run.dir / "recipe.yaml")
        if resolved.phases:  # default phases never say auto
            resolved.phases[index].learning_rate = result.suggestion
            atomic_write_text(run.dir / "recipe.yaml", resolved.to_yaml())
        run.save()
        say(f"learning_rate auto: the range test suggests {result.suggestion:.3g} ({result.plot})")
    return phase.model_copy(update={"learning_rate": state["learning_rate"]})


def find_learning_rate(
    fit: Fit,
    index: int,
    phase: PhaseConfig,
    *,
    steps: int | None = None,
    start: float = lr_finder.START_LR,
    end: float = lr_finder.END_LR,
) -> lr_finder.LRFinderResult:
    """The range test of phase `index` from the model's current weights (put back after): the
    phase's groups, BatchNorm mode, optimizer and multipliers at a constant, rising rate, on
    the training stream with its augmentation."""
    constant = {"learning_rate": start, "schedule": "constant", "warmup_epochs": 0.0}
    compile_phase(fit, index, phase.model_copy(update=constant), ema=False)
    train_ds = tasks.pipeline(
        fit.recipe, fit.data, "train", fit.task_model, fit.train_batch, training=True,
        replicas=fit.strategy.num_replicas_in_sync,
    )  # fmt: skip
    result = lr_finder.range_test(
        fit.task_model.model,
        train_ds,
        steps=steps or lr_finder.default_steps(fit.steps),
        class_weight=fit.class_weight,
        start=start,
        end=end,
    )
    result.phase = index
    return result
