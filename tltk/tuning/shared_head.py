"""Trials that search only later-phase keys start from one head, trained once.

When every searched key is a key of a phase after the first (`phases.1.learning_rate`,
`phases.2.train`, ...), each trial's first (head) phase would train the same recipe on the same
data with the same seed: the same work, every trial. Instead the search trains that phase once,
in `SEARCH/base/N/` (a tltk run of the recipe's first phase only; one per execution seed), and
each trial's run folder starts as a run whose head phase is done: its state, weights and
history rows are the base run's. tltk's ordinary resume then trains the later phases from
those weights. Hyperband's epochs are the last phase's, so its short trials cost only their
fine-tuning epochs.

A key of the head phase (head.*, augment.*, backbone.*, phases.0.*, data, seed, ...) changes
what the head learns, so such a search trains every trial from the start. When its keys are
head and phase keys only (`head_phase_keys_only`: head.dropout, phases.0.learning_rate, ...),
the backbone every trial starts from and the data it sees are the same, so a cached head phase
(a frozen backbone, no augmentation: `tltk.features`) takes the backbone's features from a
store the search keeps (`SharedFeatures`): they are computed once for the whole search, not
once per trial (one feature pass per split and execution seed).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tltk.features import SharedFeatures
from tltk.fitting import phase_weights
from tltk.io import atomic_write_json
from tltk.log import say
from tltk.recipe import Recipe
from tltk.runs import open_run

_LATER_PHASE_KEY = re.compile(r"^phases\.([0-9]+)\.")


def later_phase_keys_only(recipe: Recipe) -> bool:
    """Does the search change nothing the first (head) phase trains with?"""
    keys = list(recipe.tune.space)
    if recipe.tune.tuner == "hyperband" and len(recipe.phases) < 2:
        return False  # Hyperband would change the epochs of the only (head) phase
    return len(recipe.phases) > 1 and all(
        (m := _LATER_PHASE_KEY.match(k)) and int(m.group(1)) >= 1 for k in keys
    )


_FEATURE_KEYS = ("head.pooling",)
"""Head keys that change the pooled features themselves (they are cut after the pooling)."""


def head_phase_keys_only(recipe: Recipe) -> bool:
    """Does the search leave the backbone's features at the start of a run as they are (every
    key a head key other than the pooling, or a phase key), with a first phase that trains the
    head alone? Then its trials' cached head phases can share one feature pass."""
    keys = list(recipe.tune.space)
    return (
        bool(recipe.phases)
        and recipe.phases[0].train == "head"
        and all(
            (k.startswith("head.") and k not in _FEATURE_KEYS) or _LATER_PHASE_KEY.match(k)
            for k in keys
        )
    )


def base_recipe(trial: Recipe) -> Recipe:
    """The trial's recipe cut to its first phase: what every trial's head phase trains."""
    return trial.model_copy(update={"phases": trial.phases[:1]})


def shared_head_run(base: Recipe, folder: Path, features: SharedFeatures | None = None) -> Path:
    """Train `base` (one phase) in `folder` once; a later call finds it finished (or resumes
    it, if the search was killed while it trained)."""
    from tltk.trainer import train

    state = folder / "state.json"
    if not (state.is_file() and json.loads(state.read_text()).get("finished")):
        say(f"Training the head once for every trial: {folder}")
        train(base, run_dir=folder, shared_features=features)
    return folder


def seed_trial_run(trial: Recipe, base_dir: Path, run_dir: Path) -> None:
    """Make `run_dir` a run of `trial` whose head phase is done with the base run's result;
    a folder that already holds a run (a trial resumed after a kill) is left as it is."""
    if (run_dir / "state.json").is_file():
        return
    base_state = json.loads((base_dir / "state.json").read_text())
    run = open_run(trial, run_dir=run_dir)
    try:
        head = dict(base_state["phases"][0], shared_from=str(base_dir))
        later = [
            {"name": p.name or f"phase{i}", "train": p.train, "done": False}
            for i, p in enumerate(trial.phases)
        ][1:]
        weights = phase_weights(run, 0)
        weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base_dir / "weights" / "phase0.weights.h5", weights)
        if (base_dir / "history.csv").is_file():
            shutil.copyfile(base_dir / "history.csv", run_dir / "history.csv")
        run.state["phases"] = [head, *later]
        atomic_write_json(run_dir / "state.json", run.state)  # last: the folder is now a run
    finally:
        run.close()
