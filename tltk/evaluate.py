"""Evaluation metrics (scikit-learn), metrics.json, plots and a terminal summary.

`compute_metrics` turns labels and model scores into a JSON-safe dict; `write_metrics` writes it
atomically as `metrics.json` (plus the task type's plots: `confusion_matrix.png` for
single-label classification); `format_summary` renders it as a short table for the terminal.
What is computed for each task type lives in its `HeadSpec` (tltk/heads/).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from tltk.heads import HEAD_TYPES, get_head
from tltk.heads.figures import figure_confusion_matrix  # noqa: F401  (tltk.evaluate's API)
from tltk.heads.scoring import num as _num
from tltk.io import atomic_write_bytes, atomic_write_json


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
        task: a registered head type (`tltk.heads.head_types()`): `classification`,
            `multilabel` or `regression`; its `HeadSpec.evaluate` computes the numbers.
        top_k: classification: also report top-k accuracy with k = min(top_k, K).
        loss: the loss on the same split, recorded as given.
        threshold: multilabel: a class is predicted when its score is at least this.

    Example:
    ```python
    m = compute_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["cat", "dog"])
    m["accuracy"], m["per_class"]["dog"]["recall"]  # (1.0, 1.0)
    ```
    """
    if task not in HEAD_TYPES:
        raise ValueError(f"task: expected one of {', '.join(HEAD_TYPES)} (got {task!r})")
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    if len(y_true) != len(y_score):
        raise ValueError(f"y_true has {len(y_true)} examples but y_score has {len(y_score)}")
    spec = get_head(task)
    out = spec.evaluate(y_true, y_score, list(class_names), top_k=top_k, threshold=threshold)
    if loss is not None:
        out = {"task": out.pop("task"), "loss": loss, **out}
    return _json_safe(out)


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
    """Write `metrics.json` and, with `plots`, the task type's figures (`confusion_matrix.png`
    for classification) into `out_dir`, atomically. Returns {"metrics": path, STEM: path of
    each figure drawn}."""
    out_dir = Path(out_dir)
    written = {"metrics": atomic_write_json(out_dir / "metrics.json", _json_safe(metrics))}
    if not plots:
        return written
    for stem, figure in get_head(metrics.get("task", "classification")).figures(metrics).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        written[stem] = atomic_write_bytes(out_dir / f"{stem}.png", buffer.getvalue())
    return written


# --------------------------------------------------------------------------- terminal


def format_summary(metrics: dict, *, max_rows: int = 30) -> str:
    """A short table for the terminal: headline numbers, then per-class P/R/F1/support
    (with more than `max_rows` classes, only the `max_rows // 2` with the lowest F1)."""
    task = metrics.get("task", "classification")
    split = f" on {metrics['split']}" if "split" in metrics else ""
    head = [f"{task}{split}: n={metrics.get('n')}"]
    if metrics.get("loss") is not None:
        head.append(f"loss {metrics['loss']:.4f}")
    head += get_head(task).headline(metrics)
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
