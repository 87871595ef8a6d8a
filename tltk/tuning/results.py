"""A search's results: one row per trial (CSV and a sorted terminal table), a plot of the
objective against each searched key, and the best trial's recipe as YAML."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from tltk.io import atomic_write_bytes, atomic_write_text
from tltk.recipe import Recipe
from tltk.tuning import space

RESULTS_CSV = "results.csv"
BEST_RECIPE = "best_recipe.yaml"
PLOT = "objective_vs_keys.png"


def trial_rows(recipe: Recipe, search_dir: Path, trials: dict) -> list[dict[str, Any]]:
    """One row per KerasTuner trial, best first (failed trials last): trial, status, each
    searched key's value, the objective, seconds, the run folder."""
    keys = list(recipe.tune.space)
    objective = recipe.tune.objective
    rows = []
    for trial_id, trial in trials.items():
        record_file = search_dir / "trials" / trial_id / "trial.json"
        record = json.loads(record_file.read_text()) if record_file.is_file() else {}
        values = space.searched_values(recipe, trial.hyperparameters.values)
        row: dict[str, Any] = {"trial": trial_id, "status": str(trial.status)}
        row.update({k: values.get(k) for k in keys})
        epochs = trial.hyperparameters.values.get(space.HYPERBAND_EPOCHS)
        if epochs is not None:
            row["epochs"] = epochs
        row[objective.name] = record.get("value", trial.score)
        row["seconds"] = record.get("seconds")
        row["run"] = record.get("runs", [None])[0]
        rows.append(row)
    sign = 1 if objective.resolved_direction == "min" else -1

    def order(row: dict) -> tuple:
        value = row[objective.name]
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return (missing, 0.0 if missing else sign * value, row["trial"])

    return sorted(rows, key=order)


def write_csv(rows: list[dict], path: Path) -> Path:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table (best first), without the run folders."""
    if not rows:
        return "(no trials)"
    columns = [c for c in dict.fromkeys(c for row in rows for c in row) if c != "run"]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_best_recipe(recipe: Recipe, values: dict, path: Path) -> Recipe:
    """The best trial's recipe, as `tltk train` takes it: the trial's values set, its own
    export and callback settings (not the trial runs' ones), no `tune` section."""
    best = space.trial_recipe(recipe, values)
    header = f"# The best trial of the search in {path.parent}; train it with `tltk train`.\n"
    atomic_write_text(path, header + best.to_yaml())
    return best


def plot_objective(rows: list[dict], recipe: Recipe, path: Path) -> Path | None:
    """One panel per searched key: the objective of each finished trial against its value."""
    from matplotlib.figure import Figure

    name = recipe.tune.objective.name
    done = [r for r in rows if isinstance(r.get(name), (int, float)) and r[name] == r[name]]
    if not done:
        return None
    keys = list(recipe.tune.space)
    figure = Figure(figsize=(4 * len(keys), 3.2), layout="constrained")
    for axes, key in zip(figure.subplots(1, len(keys), squeeze=False)[0], keys, strict=True):
        _panel(axes, key, recipe.tune.space[key], done, name)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())


def _panel(axes, key: str, dimension, rows: list[dict], name: str) -> None:
    ys = [r[name] for r in rows]
    if dimension.choice is not None:
        labels = [str(v) for v in dimension.choice]
        xs = [labels.index(str(r[key])) if str(r[key]) in labels else -1 for r in rows]
        axes.set_xticks(range(len(labels)), labels, rotation=30)
    else:
        xs = [r[key] for r in rows]
        if dimension.log is not None:
            axes.set_xscale("log")
    axes.scatter(xs, ys)
    axes.set_xlabel(key)
    axes.set_ylabel(name)
    axes.grid(alpha=0.3)
