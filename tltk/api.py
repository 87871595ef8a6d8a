"""Library functions behind the CLI and notebooks: evaluate or export a finished run, and the
learning-rate range test of a recipe's phase."""

from __future__ import annotations

from pathlib import Path

from tltk import tasks
from tltk.data.types import relabel
from tltk.runs import lock_run, open_run


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


def lr_find(
    recipe,
    *,
    phase: int = 0,
    overrides: list[str] | tuple = (),
    steps: int | None = None,
    out: str | Path | None = None,
    start: float = 1e-7,
    end: float = 1.0,
):
    """The learning-rate range test of one phase of a recipe: its suggestion and curve
    (`LRFinderResult`), with the plot written to `out` (default
    RUNS/NAME/lr_find/<time>-phaseN.png, beside a .json of the curve).

    Phase 0 starts from the fresh model (the recipe's backbone weights, a new head). Phase N
    starts from phase N-1's saved weights in the newest run of this recipe (finished or not)
    that trained the phases before N the same way; without one, those phases are trained
    first in a scratch run that is thrown away. The model's weights are restored after the
    test, so nothing else changes.
    """
    import tempfile

    import keras

    from tltk.trainer import as_recipe

    recipe = as_recipe(recipe, overrides)
    plot_path = _new_plot_path(recipe, phase) if out is None else Path(out)
    if plot_path.exists():
        raise FileExistsError(f"{plot_path} exists; refusing to overwrite it (choose --out)")
    from tltk.hardware import choose, set_threads
    from tltk.strategy import cluster_role, make_strategy

    set_threads(recipe.train.threads)  # as tltk.train: before other TF ops
    strategy = make_strategy(recipe.train.strategy)
    role = cluster_role(strategy)
    hardware = choose(recipe.train, strategy, role)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(hardware.precision)
    try:
        with tempfile.TemporaryDirectory(prefix="tltk-lr-find-") as scratch:
            run = open_run(recipe, run_dir=Path(scratch) / "run")
            try:
                setup = (strategy, role, hardware)
                result = _lr_find(recipe, run, phase, steps, start, end, setup)
            finally:
                run.close()
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    from tltk.io import atomic_write_json
    from tltk.plots import plot_lr_find

    title = f"{recipe.name}, phases.{phase} {result.extra['phase']}, from {result.started_from}"
    result.plot = plot_lr_find(result, plot_path, title)
    atomic_write_json(plot_path.with_suffix(".json"), result.to_json())
    return result


def _lr_find(recipe, run, index: int, steps, start: float, end: float, setup: tuple):
    import keras

    from tltk import fit_setup, fitting, lr_auto

    keras.utils.set_random_seed(recipe.seed)
    data = tasks.load_data(recipe)
    fit = fit_setup.prepare(recipe, run, data, *setup)
    phase_list = fit.plan.phases  # the recipe's, or the default plan
    if not 0 <= index < len(phase_list):
        raise ValueError(f"--phase {index}: the recipe has phases 0..{len(phase_list) - 1}")
    model = fit.task_model.model
    started_from = "the fresh model"
    if index:
        prior = _prior_run(recipe, index)
        if prior is not None:
            model.load_weights(str(fitting.phase_weights(prior, index - 1)))
            started_from = f"{prior.dir} after phases.{index - 1}"
        else:
            fitting.sync_phase_state(run, phase_list[:index])
            for i in range(index):
                fitting.run_phase(fit, i, phase_list[i])
            model.load_weights(str(fitting.phase_weights(run, index - 1)))
            started_from = f"phases 0..{index - 1} trained first (no run of this recipe had them)"
    result = lr_auto.find_learning_rate(
        fit, index, phase_list[index], steps=steps, start=start, end=end
    )
    result.started_from = started_from
    name = phase_list[index].name or f"phase{index}"
    result.extra["phase"] = f"'{name}' ({phase_list[index].train})"
    return result


def _prior_run(recipe, index: int):
    """The newest run of `recipe` whose phase `index - 1` is done and whose recipe agrees
    with this one up to there (data, model, train settings, phases before `index`)."""
    import json

    from tltk.recipe import load_recipe
    from tltk.runs import Run

    root = Path(recipe.train.runs_dir) / recipe.name
    wanted = _start_key(recipe.model_dump(mode="json"), index)
    for folder in sorted(root.iterdir(), reverse=True) if root.is_dir() else ():
        state_file, recipe_file = folder / "state.json", folder / "recipe.yaml"
        if folder.is_symlink() or not (state_file.is_file() and recipe_file.is_file()):
            continue
        state = json.loads(state_file.read_text())
        phases = state.get("phases", [])
        if len(phases) < index or not phases[index - 1].get("done"):
            continue
        theirs = load_recipe(recipe_file).model_dump(mode="json")
        for i, p in enumerate(phases[: len(theirs["phases"])]):
            if "lr_find" in p:  # found by the range test: the recipe said auto
                theirs["phases"][i]["learning_rate"] = "auto"
        if _start_key(theirs, index) == wanted:
            return Run(folder, state)
    return None


def _start_key(recipe: dict, index: int) -> dict:
    """What decides the weights a phase starts from: all but evaluation, export, verbosity
    and the phases from `index` on."""
    key = {k: v for k, v in recipe.items() if k not in ("evaluate", "export")}
    key["train"] = {k: v for k, v in key["train"].items() if k != "verbose"}
    key["phases"] = key["phases"][:index]
    return key


def _new_plot_path(recipe, index: int) -> Path:
    import time

    folder = Path(recipe.train.runs_dir) / recipe.name / "lr_find"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = folder / f"{stamp}{'' if n == 1 else f'-{n}'}-phase{index}.png"
        if not path.exists():
            return path
    raise FileExistsError(f"{folder}: no free plot name for {stamp}")
