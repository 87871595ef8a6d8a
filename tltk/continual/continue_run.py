"""`continue_run`: train a finished run further on new data (new classes, or more of the old),
and the recipe `tltk continue RUN --data NEW [--recipe R]` builds for it."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from pydantic import ValidationError

from tltk.continual.past_run import PastRun
from tltk.recipe import ContinueConfig, Recipe, apply_override, load_recipe

BUFFER_PER_CLASS = 20
"""`replay.budget` a rehearsing continue recipe gets when its base sets none: this many
examples per class of the past run (iCaRL's 2,000 for 100 classes)."""


def continue_recipe(
    run: str | Path,
    data: str | Path | None = None,
    *,
    recipe: str | Path | dict | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Recipe:
    """The recipe of a run continuing `run` on `data`.

    Without `recipe`: the past run's resolved recipe (same name, so a new run folder under
    runs/NAME/ and a new version of the same export), with `data.path` replaced (and its
    `splits` cleared) and `continue_from.run` set; a past continue run's other
    `continue_from` settings carry over. With `recipe` (a file or dict), that recipe, with
    `continue_from.run` (and `data.path`, when given) set. `overrides` (`a.b=c`) come last.
    """
    past = PastRun.open(run)
    if recipe is None:
        raw = past.recipe.model_dump(mode="json")
        raw["continue_from"] = {**(raw.get("continue_from") or {}), "run": str(past.dir)}
    else:
        raw = _raw(recipe)
        raw.setdefault("continue_from", {})
        raw["continue_from"] = {**(raw["continue_from"] or {}), "run": str(past.dir)}
    if data is not None:
        raw.setdefault("data", {})
        raw["data"].update(path=str(data), splits={})
    final = copy.deepcopy(raw)
    for item in overrides:
        apply_override(final, item)
    try:
        strategy = ContinueConfig.model_validate(final["continue_from"]).strategy
    except ValidationError:
        strategy = []  # load_recipe below names the key at fault
    if "rehearsal" in strategy and not (final.get("replay") or {}).get("budget"):
        raw["replay"] = {**(raw.get("replay") or {}),
                         "budget": BUFFER_PER_CLASS * len(past.class_names)}  # fmt: skip
    return load_recipe(raw, overrides)


def _raw(recipe: str | Path | dict) -> dict:
    if isinstance(recipe, dict):
        return dict(recipe)
    load_recipe(recipe)  # its own errors first, with the file's line numbers
    raw = yaml.safe_load(Path(recipe).read_text()) or {}
    raw.setdefault("name", Path(recipe).stem)
    return raw


def continue_run(
    run: str | Path,
    data: str | Path | None = None,
    *,
    recipe: str | Path | dict | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    run_dir: str | Path | None = None,
    resume: bool = True,
):
    """Continue the finished `run` on `data` (see `continue_recipe`) and return the
    `TrainResult` of that new run; `result.metrics["continual"]` holds what it forgot and
    learnt. Like `tltk.train`, an unfinished continue run of the same recipe is resumed.

    Example:
    ```python
    result = tltk.continue_run("runs/digits/latest", "data/digits_5_9")
    result.metrics["continual"]["forgetting"]   # old accuracy before - after
    ```
    """
    from tltk.trainer import train

    cont = continue_recipe(run, data, recipe=recipe, overrides=overrides)
    return train(cont, run_dir=run_dir, resume=resume)
