"""head.class_weight: auto weighs the classes only where the training split is unbalanced,
says why, and stays out of the way of heads without class weights."""

from __future__ import annotations

import numpy as np
import pytest

from tltk.class_weights import IMBALANCE_RATIO, class_weight, resolve_class_weight
from tltk.data.types import LabelledData, Split
from tltk.recipe import load_recipe


def _recipe(class_weight_key, head_type: str = "classification"):
    recipe = {
        "name": "cw",
        "data": {"path": "unused"},
        "backbone": {"name": "resnet8", "weights": "none", "image_size": 16},
        "head": {"type": head_type},
    }
    if class_weight_key is not None:
        recipe["head"]["class_weight"] = class_weight_key
    return load_recipe(recipe)


def _data(counts: list[int]) -> LabelledData:
    labels = np.repeat(np.arange(len(counts)), counts)
    examples = np.array([f"x{i}.png" for i in range(len(labels))], dtype=object)
    names = [f"c{i}" for i in range(len(counts))]
    return LabelledData(names, {"train": Split(examples, labels, kind="path")})


def test_auto_balances_an_unbalanced_split_and_says_so():
    weights, why = resolve_class_weight(_recipe("auto"), _data([40, 10, 5]))
    # balanced: n / (k * count) = 55 / (3 * count)
    assert weights == pytest.approx({0: 55 / 120, 1: 55 / 30, 2: 55 / 15})
    assert "auto -> balanced" in why and "40" in why and "8.0x" in why


def test_auto_leaves_a_nearly_balanced_split_unweighted():
    ratio_counts = [int(10 * IMBALANCE_RATIO), 10]  # exactly the ratio: not over it
    weights, why = resolve_class_weight(_recipe("auto"), _data(ratio_counts))
    assert weights is None and "auto -> none" in why
    # An absent class does not count as the smallest (it has no examples to weigh).
    assert class_weight(_recipe("auto"), _data([12, 10, 0])) is None


def test_balanced_named_and_none_are_as_asked():
    assert class_weight(_recipe("balanced"), _data([10, 10])) == {0: 1.0, 1: 1.0}
    assert class_weight(_recipe({"c1": 3.0}), _data([10, 10])) == {0: 1.0, 1: 3.0}
    assert resolve_class_weight(_recipe(None), _data([90, 10])) == (None, None)
    with pytest.raises(ValueError, match="unknown class.*zebra"):
        class_weight(_recipe({"zebra": 2.0}), _data([10, 10]))


def test_auto_is_silent_for_heads_without_class_weights_and_balanced_is_refused():
    labels = np.eye(3)[[0, 0, 0, 0, 1]]
    data = LabelledData(
        ["a", "b", "c"],
        {"train": Split(np.array(["t"] * 5, dtype=object), labels, kind="text")},
        multi_label=True,
    )
    assert resolve_class_weight(_recipe("auto", "multilabel"), data) == (None, None)
    with pytest.raises(ValueError, match="multi-class"):
        class_weight(_recipe("balanced", "multilabel"), data)
