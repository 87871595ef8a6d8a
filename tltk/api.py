"""Library functions behind the CLI and notebooks: evaluate or export a finished run."""

from __future__ import annotations

from pathlib import Path

from tltk import tasks
from tltk.data.types import relabel
from tltk.runs import lock_run


def evaluate_run(
    run_dir: str | Path, *, split: str | None = None, data_path: str | Path | None = None
) -> dict:
    """Re-evaluate a finished run on one of its splits, or on another folder/file of data.

    Results go to RUN/eval-<split or folder name>/ (metrics.json, confusion_matrix.png).
    """
    run_dir = Path(run_dir)
    with lock_run(run_dir):
        return _evaluate_run(run_dir, split, data_path)


def _evaluate_run(run_dir: Path, split: str | None, data_path: str | Path | None) -> dict:
    recipe, task_model, class_names = tasks.load_run(run_dir)
    if data_path is not None:
        # Every example of the given data is evaluated: no split, no leakage dropping.
        data_cfg = recipe.data.model_copy(
            update={"path": str(data_path), "splits": {}, "val_fraction": 0.0, "test_fraction": 0.0}
        )
        # ... and only it: a continue run's past splits are not joined to it.
        recipe = recipe.model_copy(update={"data": data_cfg, "continue_from": None})
        split, label = "train", Path(data_path).name
    else:
        split = split or recipe.evaluate.split
        label = split
    out_dir = run_dir / f"eval-{label}"
    data = tasks.load_data(recipe, report_path=out_dir / "data_report.json", run_dir=run_dir)
    missing = set(data.class_names) - set(class_names)
    if missing:
        raise ValueError(
            f"{data_path}: classes {sorted(missing)} were not in training ({class_names})"
        )
    data = relabel(data, class_names)
    return tasks.evaluate(recipe, task_model, data, split, out_dir, recipe.train.batch_size)


def export_run(
    run_dir: str | Path,
    *,
    name: str | None = None,
    version: int | None = None,
    export_dir: str | None = None,
) -> Path:
    """Export a finished run's model as a new SavedModel version (parity-checked)."""
    run_dir = Path(run_dir)
    with lock_run(run_dir):
        return _export_run(run_dir, name, version, export_dir)


def _export_run(run_dir: Path, name: str | None, version: int | None, export_dir: str | None):
    import json

    recipe, task_model, class_names = tasks.load_run(run_dir)
    update = {
        k: v
        for k, v in {"name": name, "version": version, "dir": export_dir}.items()
        if v is not None
    }
    recipe = recipe.model_copy(update={"export": recipe.export.model_copy(update=update)})
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    data = tasks.load_data(recipe, run_dir=run_dir)
    return tasks.export(recipe, task_model, relabel(data, class_names), metrics, run_dir)
