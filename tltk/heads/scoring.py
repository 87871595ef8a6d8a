"""Helpers the class-scoring task types share for metrics.json and the terminal summary."""

from __future__ import annotations

from typing import Any


def averages(y_true, y_pred, names: list[str], support, kinds) -> dict[str, Any]:
    """Precision, recall and F1 under each average in `kinds`; macro over the classes present.

    A class with no example in the split (support 0) has no recall to measure; counting it as
    0 would drag the macro averages down for a fact about the split, not the model. Such
    classes are listed in `absent_classes`; their per-class rows stay, and predictions of them
    still count as errors (of the true class; in micro averages as false positives).
    """
    from sklearn.metrics import precision_recall_fscore_support

    every = list(range(len(names)))
    present = [j for j, s in enumerate(support) if s > 0] or every
    out: dict[str, Any] = {}
    for average in kinds:
        p, r, f, _ = precision_recall_fscore_support(
            y_true,
            y_pred,
            labels=present if average == "macro" else every,
            average=average,
            zero_division=0,
        )
        out.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    out["absent_classes"] = [name for name, s in zip(names, support, strict=True) if s == 0]
    return out


def per_class(names, precision, recall, f1, support) -> dict[str, dict]:
    return {
        name: {"precision": p, "recall": r, "f1": f, "support": s}
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    }


def num(value: float | None) -> str:
    """A metric for the terminal: four decimals, or n/a for an undefined one."""
    return "n/a" if value is None else f"{value:.4f}"
