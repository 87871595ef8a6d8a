"""Evaluation metrics (scikit-learn), metrics.json, a confusion-matrix plot and a terminal summary.

`compute_metrics` turns labels and model scores into a JSON-safe dict; `write_metrics` writes it
atomically as `metrics.json` (plus `confusion_matrix.png` for single-label classification);
`format_summary` renders it as a short table for the terminal.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from tltk.io import atomic_write_bytes, atomic_write_json

TASKS = ("classification", "multilabel", "regression")


def compute_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    class_names: list[str],
    *,
    task: str = "classification",
    top_k: int = 5,
    loss: float | None = None,
    threshold: float = 0.5,
) -> dict:
    """Metrics for one evaluated split, as plain Python numbers (JSON-safe).

    Args:
        y_true: classification: class ids [N] or one-hot [N, K]; multilabel: multi-hot [N, K];
            regression: targets [N] (or [N, 1]).
        y_score: classification: probabilities [N, K]; multilabel: sigmoid scores [N, K];
            regression: predictions [N] or [N, 1].
        class_names: the K class names, in score-column order (unused for regression).
        task: `classification`, `multilabel` or `regression`.
        top_k: classification: also report top-k accuracy with k = min(top_k, K).
        loss: the loss on the same split, recorded as given.
        threshold: multilabel: a class is predicted when its score is at least this.

    Example:
    ```python
    m = compute_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["cat", "dog"])
    m["accuracy"], m["per_class"]["dog"]["recall"]  # (1.0, 1.0)
    ```
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)} (got {task!r})")
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    if len(y_true) != len(y_score):
        raise ValueError(f"y_true has {len(y_true)} examples but y_score has {len(y_score)}")
    if task == "regression":
        out = _regression(y_true, y_score)
    else:
        if y_score.ndim != 2 or y_score.shape[1] != len(class_names):
            raise ValueError(
                f"y_score must be [N, {len(class_names)}] (one column per class name); "
                f"got shape {y_score.shape}"
            )
        if task == "classification":
            out = _classification(y_true, y_score, list(class_names), top_k)
        else:
            out = _multilabel(y_true, y_score, list(class_names), threshold)
    if loss is not None:
        out = {"task": out.pop("task"), "loss": loss, **out}
    return _json_safe(out)


def _classification(y_true, y_score, names: list[str], top_k: int) -> dict:
    from sklearn.metrics import (
        confusion_matrix,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    n_classes = len(names)
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    y_true = y_true.astype(int).ravel()
    y_pred = y_score.argmax(axis=1)
    labels = list(range(n_classes))
    k = min(top_k, n_classes)
    if k >= n_classes:
        top = 1.0
    elif k == 1:
        top = float(np.mean(y_pred == y_true))
    else:  # k < K implies K > 2, the only case sklearn's scorer takes [N, K] scores
        top = top_k_accuracy_score(y_true, y_score, k=k, labels=labels)
    per = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        "task": "classification",
        "n": len(y_true),
        "num_classes": n_classes,
        "accuracy": float(np.mean(y_pred == y_true)),
        "top_1_accuracy": float(np.mean(y_pred == y_true)),
        "top_k": k,
        "top_k_accuracy": top,
    }
    out.update(_averages(y_true, y_pred, names, per[3], ("macro", "weighted")))
    out["per_class"] = _per_class(names, *per)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    out["confusion_matrix"] = {"labels": names, "matrix": matrix.tolist()}
    return out


def _multilabel(y_true, y_score, names: list[str], threshold: float) -> dict:
    from sklearn.metrics import (
        hamming_loss,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = (y_true >= 0.5).astype(int)  # accept float multi-hot
    y_pred = (y_score >= threshold).astype(int)
    out: dict[str, Any] = {
        "task": "multilabel",
        "n": len(y_true),
        "num_classes": len(names),
        "threshold": threshold,
        "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
        "hamming_loss": hamming_loss(y_true, y_pred),
    }
    per = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    out.update(_averages(y_true, y_pred, names, per[3], ("micro", "macro")))
    per_class = _per_class(names, *per)
    aucs = []
    for j, name in enumerate(names):  # ROC-AUC is undefined for a class with one label value
        auc = roc_auc_score(y_true[:, j], y_score[:, j]) if len(set(y_true[:, j])) == 2 else None
        per_class[name]["roc_auc"] = auc
        aucs += [] if auc is None else [auc]
    out["roc_auc_macro"] = float(np.mean(aucs)) if aucs else None
    out["roc_auc_classes"] = len(aucs)
    out["per_class"] = per_class
    matrices = multilabel_confusion_matrix(y_true, y_pred)  # per class [[tn, fp], [fn, tp]]
    out["confusion_matrices"] = {name: m.tolist() for name, m in zip(names, matrices, strict=True)}
    return out


def _regression(y_true, y_pred) -> dict:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = y_true.astype(float).reshape(len(y_true), -1)
    y_pred = y_pred.astype(float).reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"regression: y_true {y_true.shape} vs y_pred {y_pred.shape}")
    return {
        "task": "regression",
        "n": len(y_true),
        "mae": mean_absolute_error(y_true, y_pred),
        "rmse": math.sqrt(mean_squared_error(y_true, y_pred)),
        "r2": r2_score(y_true, y_pred) if len(y_true) > 1 else None,  # undefined for one example
    }


def _averages(y_true, y_pred, names: list[str], support, averages) -> dict[str, Any]:
    """Precision, recall and F1 under each of `averages`; macro over the classes present.

    A class with no example in the split (support 0) has no recall to measure; counting it as
    0 would drag the macro averages down for a fact about the split, not the model. Such
    classes are listed in `absent_classes`; their per-class rows stay, and predictions of them
    still count as errors (of the true class; in micro averages as false positives).
    """
    from sklearn.metrics import precision_recall_fscore_support

    every = list(range(len(names)))
    present = [j for j, s in enumerate(support) if s > 0] or every
    out: dict[str, Any] = {}
    for average in averages:
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


def _per_class(names, precision, recall, f1, support) -> dict[str, dict]:
    return {
        name: {"precision": p, "recall": r, "f1": f, "support": s}
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    }


def _json_safe(value: Any) -> Any:
    """numpy scalars/arrays -> Python numbers/lists; NaN/inf -> None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------- writing


def write_metrics(metrics: dict, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write `metrics.json` (and `confusion_matrix.png` for classification) into `out_dir`,
    atomically. Returns {"metrics": path, "confusion_matrix": path (when drawn)}."""
    out_dir = Path(out_dir)
    written = {"metrics": atomic_write_json(out_dir / "metrics.json", _json_safe(metrics))}
    if plots and "confusion_matrix" in metrics:
        figure = figure_confusion_matrix(metrics)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        written["confusion_matrix"] = atomic_write_bytes(
            out_dir / "confusion_matrix.png", buffer.getvalue()
        )
    return written


def figure_confusion_matrix(metrics: dict):
    """The confusion matrix as a `matplotlib.figure.Figure`: counts as text, colours
    normalised per true-class row, class names on both axes. No pyplot global state."""
    from matplotlib.figure import Figure

    names = metrics["confusion_matrix"]["labels"]
    counts = np.asarray(metrics["confusion_matrix"]["matrix"], dtype=float)
    k = len(names)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = min(max(4.0, 0.4 * k + 2.0), 24.0)
    font = 9 if k <= 20 else 8 if k <= 35 else 6 if k <= 50 else 4
    figure = Figure(figsize=(side + 1.0, side))
    ax = figure.add_subplot()
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k), labels=names, rotation=90 if k > 8 else 45, ha="center", fontsize=font)
    ax.set_yticks(range(k), labels=names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = metrics.get("accuracy")
    title = f"confusion matrix, n={metrics.get('n', int(counts.sum()))}"
    ax.set_title(title + (f", accuracy {accuracy:.3f}" if accuracy is not None else ""))
    if k <= 50:  # beyond that the numbers are unreadable; the colours still show the pattern
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    ax.text(j, i, f"{counts[i, j]:.0f}", ha="center", va="center",
                            fontsize=font, color=colour)  # fmt: skip
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- terminal


def format_summary(metrics: dict, *, max_rows: int = 30) -> str:
    """A short table for the terminal: headline numbers, then per-class P/R/F1/support
    (with more than `max_rows` classes, only the `max_rows // 2` with the lowest F1)."""
    task = metrics.get("task", "classification")
    split = f" on {metrics['split']}" if "split" in metrics else ""
    head = [f"{task}{split}: n={metrics.get('n')}"]
    if metrics.get("loss") is not None:
        head.append(f"loss {metrics['loss']:.4f}")
    if task == "regression":
        head += [f"{key} {_num(metrics.get(key))}" for key in ("mae", "rmse", "r2")]
        return "  ".join(head)
    if task == "classification":
        head.append(f"accuracy {_num(metrics.get('accuracy'))}")
        if metrics.get("top_k", 1) > 1:
            head.append(f"top-{metrics['top_k']} {_num(metrics.get('top_k_accuracy'))}")
        head += [f"macro F1 {_num(metrics.get('f1_macro'))}"]
        head += [f"weighted F1 {_num(metrics.get('f1_weighted'))}"]
    else:
        head += [f"subset accuracy {_num(metrics.get('subset_accuracy'))}"]
        head += [f"hamming loss {_num(metrics.get('hamming_loss'))}"]
        head += [f"micro F1 {_num(metrics.get('f1_micro'))}"]
        head += [f"macro F1 {_num(metrics.get('f1_macro'))}"]
        if metrics.get("roc_auc_macro") is not None:
            head.append(f"ROC-AUC {_num(metrics['roc_auc_macro'])}")
    lines = ["  ".join(head)]
    per_class = metrics.get("per_class") or {}
    absent = metrics.get("absent_classes") or []
    if absent:
        where = f"{metrics['split']} " if "split" in metrics else ""
        lines.append(
            f"no {where}example of {len(absent)} class(es): {', '.join(absent)} (macro averages "
            f"cover the other {len(per_class) - len(absent)})"
        )
    shown = list(per_class.items())
    note = ""
    if len(shown) > max_rows:
        shown = sorted(shown, key=lambda item: item[1]["f1"])[: max_rows // 2]
        note = f"({len(shown)} of {len(per_class)} classes shown: lowest F1 first)"
    if shown:
        width = max(5, *(len(name) for name, _ in shown))
        lines.append(f"{'class':<{width}}  precision  recall      f1  support")
        for name, row in shown:
            lines.append(
                f"{name:<{width}}  {_num(row['precision']):>9}  {_num(row['recall']):>6}  "
                f"{_num(row['f1']):>6}  {row['support']:>7}"
            )
        if note:
            lines.append(note)
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
