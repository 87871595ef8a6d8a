"""`tune(recipe)`: search, then the results table, plot and best recipe (and, if asked, train
and export the best recipe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras_tuner as kt

from tltk.log import say
from tltk.recipe import Recipe
from tltk.tuning import results, space
from tltk.tuning.search import Search, TuneError, locked_search, open_search
from tltk.tuning.tuner import BudgetSpent, RecipeTuner, tuner_role


@dataclass
class TuneResult:
    """What a search found. `rows` is the results table, best first."""

    dir: Path
    rows: list[dict[str, Any]]
    best_recipe: Recipe | None
    best_recipe_path: Path | None
    best_value: float | None
    objective: str
    plot_path: Path | None = None
    trained: Any = None
    """The best recipe's TrainResult, with `train_best=True`."""
    failed: list[str] = field(default_factory=list)

    def table(self) -> str:
        return results.format_table(self.rows)


def tune(
    recipe: Recipe | str | Path | dict,
    *,
    overrides: list[str] | tuple = (),
    search_dir: str | Path | None = None,
    train_best: bool = False,
) -> TuneResult:
    """Search `recipe`'s `tune:` space; each trial is a tltk run in the search folder.

    Started again with the same recipe, a search resumes where it stopped (a larger budget
    goes on). Returns the results table (also SEARCH/results.csv), the best trial's recipe
    (SEARCH/best_recipe.yaml) and, with `train_best`, that recipe trained and exported."""
    from tltk.trainer import as_recipe, train

    recipe = as_recipe(recipe, overrides)
    search = open_search(recipe, search_dir)
    role = tuner_role()
    if role == "worker":  # trials from the chief's oracle; the chief writes the results
        tuner = RecipeTuner(search, space.make_oracle(recipe))
        _search(tuner, search)
        say(f"worker {tuner.tuner_id}: no trial left; the chief writes the results")
        return TuneResult(search.dir, [], None, None, None, recipe.tune.objective.name)
    with locked_search(search):
        write = (lambda: _write(search, tuner)) if role == "alone" else None
        tuner = RecipeTuner(search, space.make_oracle(recipe), write)
        _search(tuner, search)  # the chief: serves trials until the workers have run them all
        result = _write(search, tuner)
    say(f"Search {search.dir}: {len(result.rows)} trials, {search.spent:.0f} s")
    say(result.table())
    if result.failed:
        say(f"Failed trials: {', '.join(result.failed)} (see {search.dir / 'tuner'})")
    if result.best_recipe is None:
        raise TuneError(f"{search.dir}: no trial finished, so there is no best recipe")
    say(f"Best {result.objective}: {result.best_value:.4g}; recipe {result.best_recipe_path}")
    if train_best:  # on the trials' features, when the search shares them (head keys)
        result.trained = train(result.best_recipe_path, shared_features=search.features)
    return result


def _search(tuner: RecipeTuner, search: Search) -> None:
    try:
        tuner.search()
    except BudgetSpent:
        say(f"max_time {search.recipe.tune.max_time:g} s spent: no new trial")
    except kt.errors.FatalError as error:
        raise (error.__cause__ or error) from None  # the trial's own error, as tltk says it
    finally:
        search.save()


def _write(search: Search, tuner: RecipeTuner) -> TuneResult:
    """Table, plot and best recipe, from the oracle's trials (after every trial, so a
    killed search leaves them up to date)."""
    recipe = search.recipe
    oracle = tuner.oracle
    rows = results.trial_rows(recipe, search.dir, oracle.trials)
    results.write_csv(rows, search.dir / results.RESULTS_CSV)
    plot = results.plot_objective(rows, recipe, search.dir / results.PLOT)
    failed = [r["trial"] for r in rows if r["status"] in ("FAILED", "INVALID")]
    best_trials = oracle.get_best_trials(1)
    name = recipe.tune.objective.name
    if not best_trials:
        return TuneResult(search.dir, rows, None, None, None, name, plot, failed=failed)
    best = best_trials[0]
    path = search.dir / results.BEST_RECIPE
    best_recipe = results.write_best_recipe(recipe, best.hyperparameters.values, path)
    value = next(r[name] for r in rows if r["trial"] == best.trial_id)
    return TuneResult(search.dir, rows, best_recipe, path, value, name, plot, failed=failed)
