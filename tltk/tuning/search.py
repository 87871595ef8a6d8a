"""`tune(recipe)`: a KerasTuner search whose every trial is a normal tltk run.

The search lives in a folder of its own, `RUNS/NAME/tune-<fingerprint>/`:

    search.json       what is searched, time spent
    recipe.yaml       the recipe searched around (with its `tune` section)
    tuner/            KerasTuner's project: oracle state and one trial_N/trial.json per trial
    trials/N/         trial N: a tltk run (state, history.csv, metrics.json, ...) + trial.json
    base/E/           the head phase every trial starts from, when only later-phase keys are
                      searched (tltk/tuning/shared_head.py); one per execution seed
    results.csv       one row per trial (tltk/tuning/results.py), objective_vs_keys.png
    best_recipe.yaml  the best trial's recipe, which `tltk train` runs as is

The fingerprint leaves out the budget (max_trials, max_time): the same command resumes a killed
search, and one with a larger budget goes on from where the last one ended. KerasTuner's oracle
state gives a trial that was running when the search was killed to the next launch, with the
same values, and tltk's run resume finishes that trial's run from its last backup; a finished
trial is never trained again.
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tltk.compat import released_custom_gradients
from tltk.errors import TltkError
from tltk.features import SharedFeatures
from tltk.io import atomic_write_json, atomic_write_text
from tltk.log import say
from tltk.recipe import Recipe
from tltk.runs import fingerprint, lock_run
from tltk.tuning import shared_head, space

BUDGET_KEYS = ("max_trials", "max_time")


class TuneError(TltkError, ValueError):
    """A search that cannot run or go on (no `tune` section, an objective never logged, ...)."""


@dataclass
class Search:
    """One search's folder and what it has spent."""

    recipe: Recipe
    dir: Path
    state: dict
    launched_at: float
    spent_before: float
    features: SharedFeatures | None = None
    """The backbone's features, computed once for every trial (a search of head-phase keys:
    `shared_head.head_phase_keys_only`)."""

    @property
    def spent(self) -> float:
        """Seconds this search has run, over all its launches."""
        return self.spent_before + time.monotonic() - self.launched_at

    def out_of_time(self) -> bool:
        limit = self.recipe.tune.max_time
        return limit is not None and self.spent >= limit

    def trial_dir(self, trial_id: str, execution: int = 0) -> Path:
        return self.dir / "trials" / (trial_id if not execution else f"{trial_id}-{execution + 1}")

    def save(self) -> None:
        self.state["seconds_spent"] = round(self.spent, 1)
        atomic_write_json(self.dir / "search.json", self.state)


def search_fingerprint(recipe: Recipe) -> str:
    """The trained recipe and the search space, objective and tuner (not the budget)."""
    tune = recipe.tune.model_dump(mode="json", exclude=set(BUDGET_KEYS))
    text = json.dumps({"recipe": fingerprint(recipe), "tune": tune}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def open_search(recipe: Recipe, search_dir: str | Path | None = None) -> Search:
    """The search folder of `recipe` (made, or found again to resume)."""
    if recipe.tune is None:
        raise TuneError(
            f"{recipe.name}: the recipe has no `tune:` section; add one mapping recipe keys to "
            "the values to search (see README, Hyper-parameter search)"
        )
    fp = search_fingerprint(recipe)
    path = Path(search_dir or Path(recipe.train.runs_dir) / recipe.name / f"tune-{fp}")
    state_file = path / "search.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if state.get("fingerprint") != fp:
            raise TuneError(
                f"{path} holds a search of another recipe or space; choose another folder"
            )
        say(f"Resuming search {path} ({state.get('seconds_spent', 0):.0f} s spent)")
    else:
        path.mkdir(parents=True, exist_ok=True)
        state = {"recipe": recipe.name, "fingerprint": fp, "seconds_spent": 0.0,
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
        atomic_write_text(path / "recipe.yaml", recipe.to_yaml())
        say(f"Starting search {path}")
    search = Search(recipe, path, state, time.monotonic(), float(state.get("seconds_spent", 0)))
    if shared_head.head_phase_keys_only(recipe):
        search.features = SharedFeatures()
    search.save()
    return search


def objective_of(run_dir: Path, recipe: Recipe) -> float:
    """A trial run's objective: its best epoch's value in the last phase (the phase that ends
    the run and gives the model its final weights)."""
    from tltk.plots import read_history_csv

    objective = recipe.tune.objective if recipe.tune else None
    name = objective.name if objective else "val_loss"
    history = read_history_csv(run_dir / "history.csv")
    if name not in history:
        logged = ", ".join(c for c in history if c.startswith("val_")) or "none"
        raise TuneError(
            f"tune.objective {name!r} is not in the trial's history ({run_dir / 'history.csv'} "
            f"has {logged}); set tune.objective to one of them"
        )
    state = json.loads((run_dir / "state.json").read_text())
    start = int(state["phases"][-1].get("start_epoch", 0))
    values = [v for e, v in zip(history["epoch"], history[name], strict=True) if e >= start]
    values = [v for v in values or history[name] if v == v]  # NaN: an epoch that logged none
    if not values:
        raise TuneError(f"{run_dir}: no epoch logged {name}")
    return min(values) if objective.resolved_direction == "min" else max(values)


def train_trial(search: Search, trial_id: str, values: dict[str, Any]) -> dict:
    """Train one trial's recipe (`executions_per_trial` times, seeds seed, seed+1, ...) and
    record it in trials/ID/trial.json; returns that record."""
    from tltk.trainer import train

    tune = search.recipe.tune
    started = time.monotonic()
    scores, runs = [], []
    share = shared_head.later_phase_keys_only(search.recipe)
    with released_custom_gradients():  # the trial's train steps, once it is over
        for execution in range(tune.executions_per_trial):
            recipe = space.trial_recipe(
                search.recipe,
                values,
                **{"export.enabled": False, "train.callbacks.csv_log": True,
                   "seed": search.recipe.seed + execution},
            )  # fmt: skip
            run_dir = search.trial_dir(trial_id, execution)
            try:
                if share:
                    base = search.dir / "base" / str(execution + 1)
                    base_recipe = shared_head.base_recipe(recipe)
                    shared_head.shared_head_run(base_recipe, base, search.features)
                    shared_head.seed_trial_run(recipe, base, run_dir)
                train(recipe, run_dir=run_dir, shared_features=search.features)
            finally:  # a failed trial's models too (diverged, out of memory): not the next's
                _clear_session()
            scores.append(objective_of(run_dir, search.recipe))
            runs.append(str(run_dir))
    gc.collect()  # the train steps' graphs the registry held
    record = {
        "trial": trial_id,
        "values": space.searched_values(search.recipe, values),
        "epochs": values.get(space.HYPERBAND_EPOCHS),
        "objective": tune.objective.name,
        "value": sum(scores) / len(scores),
        "executions": scores,
        "seconds": round(time.monotonic() - started, 2),
        "runs": runs,
    }
    atomic_write_json(search.trial_dir(trial_id) / "trial.json", record)
    return record


def _clear_session() -> None:
    """Free the trial's graphs and models so memory stays flat across trials (with
    `released_custom_gradients`, which lets TensorFlow free its train steps' graphs)."""
    import keras

    keras.backend.clear_session()
    gc.collect()


def locked_search(search: Search):
    """The search folder's lock (one search process per folder; trial runs have their own)."""
    return lock_run(search.dir)
