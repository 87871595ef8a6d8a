"""`head.class_weight`: Keras' per-class sample weights of a classification head, which the
linear probe (`tltk.probe`) and every phase's fit take alike.

    null       every example weighs 1
    balanced   n / (k * count_c) (scikit-learn's "balanced"): every class weighs the same in all
    auto       balanced when the training split is unbalanced (its largest class has more than
               IMBALANCE_RATIO times the examples of its smallest), else none; the run says
               which and why
    {name: w}  the named classes' weights, 1 for the others
"""

from __future__ import annotations

import numpy as np

from tltk.data import LabelledData
from tltk.heads import get_head
from tltk.recipe import Recipe

IMBALANCE_RATIO = 3.0
"""`auto` weighs the classes when the largest has more than this many times the training
examples of the smallest present one."""


def class_weight(recipe: Recipe, data: LabelledData) -> dict[int, float] | None:
    """The weights `fit` gets ({class id: weight}), or None."""
    return resolve_class_weight(recipe, data)[0]


def resolve_class_weight(
    recipe: Recipe, data: LabelledData
) -> tuple[dict[int, float] | None, str | None]:
    """(weights or None, why) for `head.class_weight`; why is None when the recipe asks
    nothing. ValueError for weights a head cannot take or classes the data lacks."""
    asked = recipe.head.class_weight
    applies = get_head(recipe.head_type).class_weights
    if asked is None or (asked == "auto" and not applies):
        return None, None
    if not applies:
        raise ValueError(
            "head.class_weight: class weights apply to multi-class (classification) heads"
        )
    if isinstance(asked, dict):
        unknown = set(asked) - set(data.class_names)
        if unknown:
            raise ValueError(
                f"head.class_weight: unknown class(es) {sorted(unknown)}; "
                f"classes: {data.class_names}"
            )
        return {i: float(asked.get(name, 1.0)) for i, name in enumerate(data.class_names)}, (
            "head.class_weight: the recipe's weights"
        )
    from tltk.data import class_weights

    labels = np.asarray(data.splits["train"].labels)
    balanced = class_weights(labels, data.num_classes)
    if asked == "balanced":
        return balanced, "head.class_weight: balanced"
    counts = np.bincount(labels.argmax(1) if labels.ndim == 2 else labels)
    counts = counts[counts > 0]
    ratio = counts.max() / counts.min()
    facts = f"the largest class has {counts.max():,} training examples, the smallest "
    facts += f"{counts.min():,} ({ratio:.1f}x)"
    if ratio > IMBALANCE_RATIO:
        return balanced, f"head.class_weight: auto -> balanced: {facts}"
    return None, f"head.class_weight: auto -> none: {facts}, at most {IMBALANCE_RATIO:g}x"
