"""A continue run's models: the past run's model grown by the new classes (the student, which
the run trains and saves), the past model itself (the teacher: the "before" measurement and
distillation's soft targets), and what `fit` trains.

The grown starting point is saved once (RUN/weights/grown.weights.h5), so a resumed run starts
from the very weights the interrupted one did.
"""

from __future__ import annotations

import numpy as np

from tltk.continual.distill import DistillingModel
from tltk.continual.features import SCORES_LAYER, split_features
from tltk.continual.growth import copy_grown, probe_new_rows, set_new_rows
from tltk.continual.past_run import PastRun
from tltk.data.types import LabelledData
from tltk.errors import ContinueError
from tltk.io import save_weights_atomic
from tltk.log import say
from tltk.model import TaskModel, build_model
from tltk.recipe import Recipe
from tltk.runs import Run

GROWN_WEIGHTS = "grown.weights.h5"
ARCHITECTURE_KEYS = {"head": ("pooling", "hidden_units")}


def check_compatible(recipe: Recipe, past: Recipe) -> None:
    """A continue run keeps the past run's architecture: same modality, backbone (its weights
    aside: they come from the past run) and head layers."""
    ours, theirs = recipe.model_dump(mode="json"), past.model_dump(mode="json")
    differ = [] if ours["modality"] == theirs["modality"] else ["modality"]
    for key, value in theirs["backbone"].items():
        if key != "weights" and ours["backbone"].get(key) != value:
            differ.append(f"backbone.{key}")
    differ += [
        f"head.{k}" for k in ARCHITECTURE_KEYS["head"] if ours["head"][k] != theirs["head"][k]
    ]
    if differ:
        shown = ", ".join(f"{k} (past run: {_get(theirs, k)!r}, here: {_get(ours, k)!r})"
                          for k in differ)  # fmt: skip
        raise ContinueError(
            f"continue_from.run: this recipe's model differs from the past run's in {shown}; a "
            "continue run keeps the past run's model: copy those keys from its recipe.yaml"
        )


def _get(doc: dict, dotted: str):
    for part in dotted.split("."):
        doc = doc[part]
    return doc


def continue_models(
    recipe: Recipe, run: Run, data: LabelledData
) -> tuple[TaskModel, object, dict[str, np.ndarray]]:
    """(the grown task model, the model `fit` trains, the pooled features of the splits that
    the growth probe computed: split name -> [N, D], maybe none). Call in the strategy's scope.

    The features are those of the past run's backbone, which is the run's backbone until a
    phase trains it: the feature cache starts from them (`FeatureCache.put`). They are given
    only for a head without a hidden layer, where the scores layer's inputs are the pooled
    features."""
    from tltk import tasks

    past = PastRun.open(recipe.continue_from.run)
    check_compatible(recipe, past.recipe)
    _, teacher, _ = tasks.load_run(past.dir)
    backbone = tasks.modality(past.recipe).restore_backbone(past.recipe.backbone, past.dir)
    student = build_model(backbone, tasks.head_config(recipe), data.num_classes, name=recipe.name)
    grown, features = run.dir / "weights" / GROWN_WEIGHTS, {}
    if grown.is_file():
        student.model.load_weights(str(grown))
    else:
        features = _grow(recipe, teacher, student, data)
        grown.parent.mkdir(exist_ok=True)
        save_weights_atomic(student.model, grown)
    if recipe.head.hidden_units:
        features = {}
    _measure_before(recipe, run, past, teacher, data)
    if "distill" not in recipe.continue_from.strategy:
        return student, student.model, features
    cfg = recipe.continue_from.distill
    return student, DistillingModel(
        student.model, teacher.model, temperature=cfg.temperature, weight=cfg.weight
    ), features  # fmt: skip


def _grow(
    recipe: Recipe, teacher: TaskModel, student: TaskModel, data: LabelledData
) -> dict[str, np.ndarray]:
    """Copy the past model into the wider one, fit the new rows; the features of the splits the
    probe used (train, and val when there is one), none without a probe."""
    try:
        k_old = copy_grown(teacher.model, student.model)
    except ValueError as e:
        raise ContinueError(f"continue_from.run: cannot grow the past run's model: {e}") from e
    k_new = data.num_classes - k_old
    if not k_new or recipe.continue_from.new_rows != "probe":
        return {}
    features = {
        name: split_features(recipe, student, split, data.num_classes, recipe.train.batch_size)
        for name, split in data.splits.items()
        if name in ("train", "val") and len(split)
    }
    val = (features["val"], data.splits["val"].labels) if "val" in features else None
    kernel, bias = student.model.get_layer(SCORES_LAYER).get_weights()
    train = data.splits["train"]
    *rows, how = probe_new_rows(
        features["train"], train.labels, kernel[:, :k_old], bias[:k_old], data.num_classes,
        val=val,
    )  # fmt: skip
    set_new_rows(student.model, k_old, *rows)
    say(f"Head grown from {k_old} to {data.num_classes} classes; the new rows from a probe on "
        f"{len(train)} training examples' features, {how}")  # fmt: skip
    return features


def _measure_before(
    recipe: Recipe, run: Run, past: PastRun, teacher: TaskModel, data: LabelledData
) -> None:
    """The past model's accuracy on the old test split, once, before any training: the past
    run's own final evaluation (metrics.json) when it was of that very split, which is the old
    test split as splits.csv lists it, else an evaluation now."""
    from tltk import tasks
    from tltk.continual.measure import accuracy

    if "continual_before" in run.state:
        return
    n_old = data.report["continual"]["test"]["old"]
    done = past.metrics
    if (done.get("split"), done.get("n"), done.get("num_classes")) == (
        "test", n_old, len(past.class_names)
    ) and done.get("accuracy") is not None:  # fmt: skip
        before = {"accuracy": float(done["accuracy"]), "n": n_old, "from": "metrics.json"}
    else:
        old_test = data.splits["test"].subset(np.arange(n_old))
        shell = LabelledData(past.class_names, {"test": old_test})
        y_true, y_score, _ = tasks.predict_split(
            past.recipe, teacher, shell, "test", recipe.train.batch_size
        )
        before = {"accuracy": accuracy(y_true, y_score), "n": n_old, "from": "evaluated"}
    run.state["continual_before"] = before
    run.save()
