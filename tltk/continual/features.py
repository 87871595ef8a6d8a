"""Features of a split: what the scores layer sees (the pooled backbone output, after the hidden
layer if the head has one), for herding and for the probe that starts new classes' rows.

The one place continual learning computes features, so that cached backbone features can
replace it.
"""

from __future__ import annotations

import keras
import numpy as np

from tltk.data import build_pipeline
from tltk.data.types import Split
from tltk.heads import HEAD_PREFIX
from tltk.model import TaskModel
from tltk.recipe import Recipe

SCORES_LAYER = f"{HEAD_PREFIX}scores"


def scores_inputs(task_model: TaskModel) -> keras.Model:
    """The model up to the input of its scores layer (inference mode: no dropout)."""
    model = task_model.model
    return keras.Model(model.input, model.get_layer(SCORES_LAYER).input)


def split_features(
    recipe: Recipe, task_model: TaskModel, split: Split, num_classes: int, batch_size: int
) -> np.ndarray:
    """float32 [N, D]: the scores layer's inputs on each example of `split`, in its order, from
    un-augmented examples decoded as in evaluation."""
    from tltk import tasks

    if not len(split):
        return np.zeros((0, task_model.model.get_layer(SCORES_LAYER).input.shape[-1]), "float32")
    ds = build_pipeline(
        split,
        num_classes=num_classes,
        preprocessor=tasks.modality(recipe).preprocessor(task_model.backbone),
        batch_size=batch_size,
        training=False,
        seed=recipe.seed,
        cache="none",
        head_type=recipe.head_type,
    )
    inputs = ds.map(lambda x, y: x)
    return np.asarray(scores_inputs(task_model).predict(inputs, verbose=0), dtype="float32")
