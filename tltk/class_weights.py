"""`head.class_weight`: Keras' per-class sample weights of a classification head, which the
linear probe (`tltk.probe`) and every phase's fit take alike.

    null       every example weighs 1
    balanced   n / (k * count_c) (scikit-learn's "balanced"): every class weighs the same in all
    sqrt       the square root of balanced, scaled so the mean weight of a training example is
               1: halfway (in log scale) between none and balanced
    auto       sqrt when the training split is unbalanced (its largest class has more than
               IMBALANCE_RATIO times the examples of its smallest), else none; the run says
               which and why
    {name: w}  the named classes' weights, 1 for the others

Why sqrt for `auto` (BENCHMARKS.md, "Class weights on unbalanced texts"): on 51 Debian sections
(60x between the largest and the smallest) the linear probe with balanced weights lost 4.6
points of accuracy and 1.5 of macro-F1; with sqrt weights it kept its accuracy (-0.2) and
gained 2.5 points of macro-F1. A Keras head trained on the same features gained 3.0 points of
accuracy and 9.0 of macro-F1 with sqrt (balanced: +8.2 macro-F1, -0.7 accuracy). `auto` (the
default) leaves a continue run unweighted. Measured on Fashion-MNIST (BENCHMARKS.md,
"Continual learning", the next tries): unweighted, 200 replayed images among 2,160 new ones
were drowned (67.5 points of the old classes forgotten against 24.7 balanced), but balanced
weights 25x a new image's made a short top-groups step diverge, and the default buffer
(tltk.continual.continue_run.BUFFER_PER_CLASS) is smaller still. `sqrt` did not hold the old
classes there ("the third tries": 65.5 points forgotten with 200 replayed images, 27.8 with
600, against 24.7 and 16.6 balanced), so no weighting is the plainly better default. A
rehearsing recipe sets its weights with its buffer size in mind.
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
    if asked == "auto" and recipe.continue_from is not None:
        return None, "head.class_weight: auto -> none: a continue run (new data + replay buffer)"
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
    ids = labels.argmax(1) if labels.ndim == 2 else labels
    balanced = class_weights(ids, data.num_classes)
    if asked == "balanced":
        return balanced, "head.class_weight: balanced"
    if asked == "sqrt":
        return sqrt_balanced(balanced, ids), "head.class_weight: sqrt"
    counts = np.bincount(ids)
    counts = counts[counts > 0]
    ratio = counts.max() / counts.min()
    facts = f"the largest class has {counts.max():,} training examples, the smallest "
    facts += f"{counts.min():,} ({ratio:.1f}x)"
    if ratio > IMBALANCE_RATIO:
        return sqrt_balanced(balanced, ids), f"head.class_weight: auto -> sqrt: {facts}"
    return None, f"head.class_weight: auto -> none: {facts}, at most {IMBALANCE_RATIO:g}x"


def sqrt_balanced(balanced: dict[int, float], ids: np.ndarray) -> dict[int, float]:
    """The square roots of `balanced`, scaled to a mean weight of 1 over the examples `ids`
    (so the loss keeps its scale and the learning rate its meaning)."""
    roots = {c: w**0.5 for c, w in balanced.items()}
    per_class = np.zeros(max(roots) + 1)
    per_class[list(roots)] = list(roots.values())
    mean = float(np.mean(per_class[ids]))  # a lookup per example in numpy, not in Python
    return {c: w / mean for c, w in roots.items()}
