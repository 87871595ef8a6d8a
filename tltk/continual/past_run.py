"""A finished run as a continue run sees it: its recipe and classes, its splits read back from
RUN/splits.csv, its metrics and its lineage (the runs it continued from)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from tltk.data.types import Split
from tltk.errors import ContinueError
from tltk.recipe import Recipe, load_recipe

RUN_FILES = ("state.json", "recipe.yaml", "classes.json", "model.weights.h5", "splits.csv")


@dataclass
class PastRun:
    """A finished classification run folder, read only."""

    dir: Path
    recipe: Recipe
    class_names: list[str]
    _splits: dict[str, Split] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> PastRun:
        """The finished run at `path`; ContinueError saying what is missing otherwise."""
        path = Path(path)
        missing = [name for name in RUN_FILES if not (path / name).is_file()]
        if missing:
            raise ContinueError(
                f"continue_from.run: {path} is not a finished tltk run (missing "
                f"{', '.join(missing)}); name a run folder such as runs/NAME/latest"
            )
        if not json.loads((path / "state.json").read_text()).get("finished"):
            raise ContinueError(
                f"continue_from.run: {path} has not finished; finish it first (run its recipe "
                "again to resume it)"
            )
        recipe = load_recipe(path / "recipe.yaml")
        if recipe.head_type != "classification":
            raise ContinueError(
                f"continue_from.run: {path} is a {recipe.head_type} run; continuing with new "
                "classes is for classification runs"
            )
        return cls(path, recipe, json.loads((path / "classes.json").read_text()))

    @cached_property
    def metrics(self) -> dict:
        path = self.dir / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def split(self, name: str) -> Split:
        """The run's `name` split (train, val or test) as it trained or evaluated on it, from
        splits.csv; empty when the run had none. Its files must still exist."""
        if name not in self._splits:
            self._splits[name] = self._read_split(name)
        return self._splits[name]

    def _read_split(self, name: str) -> Split:
        kind = "text" if self.recipe.modality == "text" else "path"
        examples, labels, origins = [], [], []
        with open(self.dir / "splits.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["split"] != name:
                    continue
                if row["label"] not in self.class_names:
                    raise ContinueError(
                        f"{self.dir}/splits.csv: label {row['label']!r} is not one of the "
                        f"run's classes (classes.json)"
                    )
                examples.append(row["example"])
                labels.append(self.class_names.index(row["label"]))
                origins.append(row["origin"])
        split = Split(np.array(examples, dtype=object), np.array(labels, np.int64), kind, origins)
        if kind == "path" and len(split) and not all(examples):
            return self._reloaded_split(name, len(split))
        if kind == "path":
            _require_files(split, f"{self.dir}/splits.csv ({name} split)")
        return split

    def _reloaded_split(self, name: str, n: int) -> Split:
        """Images the run held in memory (tfds) are not in splits.csv: its data is loaded again
        the way it was (same source, seed and split), and checked against the file."""
        from tltk import tasks

        data = tasks.load_data(self.recipe)
        split = data.splits.get(name)
        if split is None or len(split) != n:
            raise ContinueError(
                f"{self.dir}: its {name} split ({n} examples in splits.csv) could not be "
                "rebuilt from its data source; is the data still the same?"
            )
        return split

    def lineage(self) -> list[dict]:
        """The chain of runs up to this one, oldest first: each a dict of its run folder,
        classes and accuracies (what `tltk.continual.measure` records per step)."""
        recorded = self.metrics.get("continual", {}).get("lineage")
        if recorded:
            return list(recorded)
        return [
            {
                "step": 0,
                "run": str(self.dir),
                "classes": list(self.class_names),
                "new_classes": list(self.class_names),
                "overall": self.metrics.get("accuracy"),
            }
        ]


def _require_files(split: Split, where: str) -> None:
    gone = [str(p) for p in split.examples if not Path(str(p)).is_file()]
    if gone:
        shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        raise ContinueError(
            f"{where}: {len(gone)} file(s) no longer exist ({shown}). A continue run measures "
            "the old classes on the old run's test split; restore those files (or run from "
            "the folder the old run ran in: the paths are relative to it)"
        )
