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
    if class_weight_key is not None:  # None: the default
        recipe["head"]["class_weight"] = class_weight_key
    return load_recipe(recipe)


def _data(counts: list[int]) -> LabelledData:
    labels = np.repeat(np.arange(len(counts)), counts)
    examples = np.array([f"x{i}.png" for i in range(len(labels))], dtype=object)
    names = [f"c{i}" for i in range(len(counts))]
    return LabelledData(names, {"train": Split(examples, labels, kind="path")})


def test_auto_weighs_an_unbalanced_split_by_sqrt_and_says_so():
    counts = [40, 10, 5]
    weights, why = resolve_class_weight(_recipe("auto"), _data(counts))
    assert "auto -> sqrt" in why and "40" in why and "8.0x" in why
    # sqrt of balanced (n / (k * count) = 55 / (3 * count)), scaled to a mean of 1 an example
    roots = np.sqrt(55 / (3 * np.array(counts)))
    expected = roots / (np.dot(roots, counts) / sum(counts))
    assert [weights[c] for c in range(3)] == pytest.approx(list(expected))
    assert np.dot([weights[c] for c in range(3)], counts) == pytest.approx(sum(counts))
    assert weights == class_weight(_recipe("sqrt"), _data(counts))
    balanced = class_weight(_recipe("balanced"), _data(counts))
    assert balanced == pytest.approx({0: 55 / 120, 1: 55 / 30, 2: 55 / 15})
    # Halfway in log scale: the smallest class's weight over the largest's is sqrt(8).
    assert weights[2] / weights[0] == pytest.approx(np.sqrt(balanced[2] / balanced[0]))


def test_auto_leaves_a_nearly_balanced_split_unweighted():
    ratio_counts = [int(10 * IMBALANCE_RATIO), 10]  # exactly the ratio: not over it
    weights, why = resolve_class_weight(_recipe("auto"), _data(ratio_counts))
    assert weights is None and "auto -> none" in why
    # An absent class does not count as the smallest (it has no examples to weigh).
    assert class_weight(_recipe("auto"), _data([12, 10, 0])) is None


def test_auto_is_the_default_and_leaves_a_continue_run_unweighted():
    assert _recipe(None).head.class_weight == "auto"
    assert class_weight(_recipe(None), _data([40, 10])) is not None
    from tltk.recipe.continual import ContinueConfig

    recipe = _recipe(None).model_copy(update={"continue_from": ContinueConfig(run="past")})
    weights, why = resolve_class_weight(recipe, _data([40, 10]))
    assert weights is None and "a continue run" in why


def test_balanced_named_and_none_are_as_asked():
    assert class_weight(_recipe("balanced"), _data([10, 10])) == {0: 1.0, 1: 1.0}
    assert class_weight(_recipe({"c1": 3.0}), _data([10, 10])) == {0: 1.0, 1: 3.0}
    unweighted = _recipe(None).model_copy(deep=True)
    unweighted.head.class_weight = None
    assert resolve_class_weight(unweighted, _data([90, 10])) == (None, None)
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
