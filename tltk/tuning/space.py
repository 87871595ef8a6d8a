"""A recipe's `tune:` section -> KerasTuner's HyperParameters and Oracle (its own search
algorithms: random search, Bayesian optimisation, Hyperband), and a trial's values -> the
recipe that trial trains."""

from __future__ import annotations

import copy
import json
from typing import Any

import keras_tuner as kt

from tltk.overrides import set_key
from tltk.recipe import Recipe, load_recipe
from tltk.recipe.tuning import Dimension, TuneConfig

HYPERBAND_EPOCHS = "tuner/epochs"
"""The epochs Hyperband gives a trial: they become the last (fine-tuning) phase's epochs."""

_PLAIN_CHOICE_TYPES = (bool, int, float, str)


def hyperparameters(tune: TuneConfig) -> kt.HyperParameters:
    """One KerasTuner hyperparameter per searched key, named by the key itself."""
    hp = kt.HyperParameters()
    for key, dimension in tune.space.items():
        _declare(hp, key, dimension)
    return hp


def _declare(hp: kt.HyperParameters, key: str, dim: Dimension) -> None:
    if dim.choice is not None:
        hp.Choice(key, _choice_values(dim.choice), ordered=_is_ordered(dim.choice))
        return
    low, high = dim.range or dim.log
    sampling = "log" if dim.log is not None else "linear"
    if dim.is_int:
        hp.Int(key, int(low), int(high), step=dim.step, sampling=sampling)
    else:
        hp.Float(key, float(low), float(high), step=dim.step, sampling=sampling)


def _choice_values(choice: list) -> list:
    """KerasTuner takes choices of one plain type; others (a mix, a null) travel as JSON."""
    kinds = {type(v) for v in choice}
    if len(kinds) == 1 and kinds <= set(_PLAIN_CHOICE_TYPES):
        return list(choice)
    return [json.dumps(v) for v in choice]


def _is_ordered(choice: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in choice)


def recipe_value(dim: Dimension, value: Any) -> Any:
    """A trial's value for `dim` as the recipe takes it (undoing `_choice_values`)."""
    if dim.choice is not None and _choice_values(dim.choice) != list(dim.choice):
        return json.loads(value)
    return value


def make_oracle(recipe: Recipe, project_seed: int | None = None) -> kt.Oracle:
    """The tuner's Oracle for `recipe.tune`, its objective and budget in trials."""
    tune = recipe.tune
    common = {
        "objective": kt.Objective(tune.objective.name, tune.objective.resolved_direction),
        "hyperparameters": hyperparameters(tune),
        "allow_new_entries": False,
        "tune_new_entries": False,
        "seed": tune.seed if tune.seed is not None else (project_seed or recipe.seed),
    }
    if tune.tuner == "random":
        return kt.oracles.RandomSearchOracle(max_trials=tune.max_trials, **common)
    if tune.tuner == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=tune.max_trials, **common)
    oracle = kt.oracles.HyperbandOracle(
        max_epochs=fine_tune_epochs(recipe), factor=tune.hyperband_factor, **common
    )
    oracle.max_trials = tune.max_trials  # Hyperband takes no max_trials; its base Oracle does
    return oracle


def fine_tune_epochs(recipe: Recipe) -> int:
    """Hyperband's largest epoch budget: the recipe's last phase's epochs."""
    if not recipe.phases:
        raise ValueError(
            f"{recipe.name}: tune.tuner hyperband gives the last phase its epochs, but the "
            "recipe lists no phases; write them out under `phases:`"
        )
    return max(2, recipe.phases[-1].epochs)


def trial_recipe(recipe: Recipe, values: dict[str, Any], **updates: Any) -> Recipe:
    """`recipe` (without `tune`) with a trial's values set; `updates` are further dotted keys
    (e.g. `{"export.enabled": False}`)."""
    raw = copy.deepcopy(recipe.without_tune())
    tune = recipe.tune
    for key, value in values.items():
        if key in tune.space:
            set_key(raw, key, recipe_value(tune.space[key], value), f"trial value {key}")
    if HYPERBAND_EPOCHS in values:
        set_key(raw, f"phases.{len(recipe.phases) - 1}.epochs", values[HYPERBAND_EPOCHS], "")
    for key, value in updates.items():
        set_key(raw, key, value, f"trial setting {key}")
    return load_recipe(raw)


def searched_values(recipe: Recipe, values: dict[str, Any]) -> dict[str, Any]:
    """A trial's values of the searched keys, as the recipe takes them (no tuner/ entries)."""
    space = recipe.tune.space
    return {k: recipe_value(space[k], v) for k, v in values.items() if k in space}
