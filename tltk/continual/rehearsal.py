"""Where replay buffers are made and found: a run keeps one at the end of training
(`replay.budget`), and a rehearsing continue run replays its past run's.

A past run that kept no buffer gets one selected now, from its training split (its files must
still be there) and with its own model's features, stored in the continue run's folder
(RUN/rehearsal/): the past run is never written to, and a resumed continue run replays the
very examples it started with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tltk.continual.features import split_features
from tltk.continual.past_run import PastRun
from tltk.continual.replay import BUFFER_DIR, read_buffer, select, write_buffer
from tltk.data.types import LabelledData, Split
from tltk.log import say
from tltk.model import TaskModel
from tltk.recipe import Recipe

SELECTED_DIR = "rehearsal"
"""A continue run's copy of the buffer it selected from a past run that kept none."""


def keep_buffer(
    recipe: Recipe,
    task_model: TaskModel,
    data: LabelledData,
    run_dir: Path,
    *,
    features: np.ndarray | None = None,
) -> None:
    """RUN/replay/ from the training split, selected with the trained model's features (its
    scores layer's inputs: `features` when the run has them already, e.g. from its feature
    cache; a buffer written before a restart is kept as it is)."""
    folder = Path(run_dir) / BUFFER_DIR
    if not recipe.replay.budget or folder.is_dir():
        return
    buffer_from(recipe, task_model, data.splits["train"], data.class_names, folder, run_dir,
                features=features)  # fmt: skip


def buffer_from(
    recipe: Recipe,
    task_model: TaskModel,
    split: Split,
    class_names: list[str],
    folder: Path,
    run_dir: Path,
    *,
    features: np.ndarray | None = None,
) -> Path:
    """Select `recipe.replay.budget` examples of `split` with `task_model` (herding: on
    `features`, computed here when not given) and write them to `folder` (see
    tltk/continual/replay.py)."""
    cfg = recipe.replay
    if cfg.selection != "herding":
        features = None
    elif features is None:
        features = split_features(
            recipe, task_model, split, len(class_names), recipe.train.batch_size
        )
    index = select(
        split.labels, len(class_names), cfg.budget, cfg.selection, seed=recipe.seed,
        features=features,
    )  # fmt: skip
    info = {"budget": cfg.budget, "selection": cfg.selection, "run": str(run_dir)}
    write_buffer(folder, split, index, class_names, info)
    say(f"Replay buffer: {len(index)} of {len(split)} training examples ({cfg.selection}) in "
        f"{folder}")  # fmt: skip
    return folder


def past_buffer(recipe: Recipe, past: PastRun, run_dir: Path) -> Split:
    """The old examples a rehearsing continue run mixes into its training split: the past
    run's buffer, else one selected now from its training split into RUN/rehearsal/."""
    kept = past.dir / BUFFER_DIR
    if kept.is_dir():
        return read_buffer(kept, past.class_names)
    folder = Path(run_dir) / SELECTED_DIR
    if not folder.is_dir():
        from tltk import tasks

        say(f"{past.dir} kept no replay buffer; selecting one from its training split")
        _, model, _ = tasks.load_run(past.dir)
        train = past.split("train")
        buffer_from(past.recipe.model_copy(update={"replay": recipe.replay}), model, train,
                    past.class_names, folder, past.dir)  # fmt: skip
    return read_buffer(folder, past.class_names)
