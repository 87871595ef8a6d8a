"""Task types: one `HeadSpec` per type (classification, multilabel, regression), in a registry.

A head spec holds everything that differs between task types, so the rest of tltk asks it
instead of branching on the type's name:

    model      `activation` and `num_outputs` of the scores layer (`trunk.build_head` adds it)
    training   `loss` (label smoothing), compiled `metrics`, `class_weights` allowed or not
    data       `label_kind` (what the readers parse: "class", "classes" or "value"),
               `label_array` + `encode_label` (tf.data: one-hot, multi-hot, flat float),
               `targets` (the numpy labels the loss sees), `predictions` (scores as evaluated)
    evaluation `evaluate` (metrics.json's numbers), `headline` (the terminal summary), `figures`
    serving    `check_outputs`, `serving_outputs` and `output_doc` (the SavedModel's signature
               outputs), `parity_output`, `labels_file`, `prediction_rows` (`tltk predict`)

Adding a task type = one file here with a `HeadSpec` subclass + its test + one line in
`HEAD_TYPES`; `tests/test_head_contract.py` then trains, evaluates, exports and predicts with it.

Detection and segmentation fit the same contract with labels that are not one per example:
their `label_kind` ("boxes", "mask") tells the data readers to parse a variable-length list of
boxes or a mask image per example; `label_array`/`encode_label` turn those into padded
[N, max_boxes, 5] or [H, W] tensors (a ragged batch padded in `encode_label`); `num_outputs`
and an overridden scores layer give box regressions + class scores (or a per-pixel map); the
loss, `targets` and `evaluate` (mAP, IoU) work on those shapes; `serving_outputs` returns
boxes/classes/scores (or a mask). Nothing outside the spec needs to know the shapes.

The registry maps names to "module:Class" paths and imports a spec only when asked, so
`import tltk.recipe` (which validates `head.type` against it) does not load TensorFlow.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from tltk.registry import instantiate

if TYPE_CHECKING:
    from tltk.heads.base import HeadSpec

HEAD_PREFIX = "head_"
"""Every head layer's name starts with this (that is the `head` group phases act on)."""

HEAD_TYPES: dict[str, str] = {
    "classification": "tltk.heads.classification:ClassificationHead",
    "multilabel": "tltk.heads.multilabel:MultiLabelHead",
    "regression": "tltk.heads.regression:RegressionHead",
}


def head_types() -> tuple[str, ...]:
    """The registered task type names, in registry order."""
    return tuple(HEAD_TYPES)


@cache
def get_head(name: str) -> HeadSpec:
    """The spec of a registered task type; ValueError naming the registered ones otherwise."""
    return instantiate(HEAD_TYPES, name, what="head type", registry_name="HEAD_TYPES")


_LAZY = {
    "build_head": "tltk.heads.trunk",
    "head_loss": "tltk.heads.trunk",
    "head_metrics": "tltk.heads.trunk",
    "HeadSpec": "tltk.heads.base",
}


def __getattr__(name: str):
    # Lazy for the same reason as the registry: the layers need Keras, the names do not.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tltk.heads' has no attribute {name!r}")


__all__ = ["HEAD_PREFIX", "HEAD_TYPES", "get_head", "head_types", *_LAZY]
