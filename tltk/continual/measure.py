"""What a continue run forgot and learnt, from real evaluations of the old and the new model.

The continue run's test split is the old run's test split (first) followed by the new data's;
`data.report["continual"]["test"]` says how many rows are old. Accuracies (top-1, over all
K_total classes for the new model, so an old example taken for a new class is an error):

    old_classes.before   the old model on the old test split (measured before training)
    old_classes.after    the new model on the same examples
    old_classes.among_old  the same, the argmax over the old classes' columns only: what the
                         model still knows of the old classes, apart from its bias between
                         old and new ones (high here and low `after`: the old examples are
                         taken for new classes, their ranking among the old is intact)
    forgetting           before - after
    new_classes          the new model on the new test examples of classes the old run lacked
    new_data             the new model on the whole new test split (with new examples of old
                         classes, when the new data has any)
    overall              the new model on the whole test split (metrics.json's `accuracy`)

Each continue run appends its step to the lineage (`lineage`: the chain of runs with their
classes and these numbers), which `plot_lineage` draws as forgetting.png.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tltk.io import atomic_write_bytes


def accuracy(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """Top-1 accuracy; None for no examples."""
    if not len(y_true):
        return None
    return float(np.mean(np.asarray(y_score).argmax(axis=1) == np.asarray(y_true)))


def continual_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    report: dict,
    before: dict,
    lineage: list[dict],
    run_dir: str | Path,
    strategy: list[str],
) -> dict:
    """metrics.json's `continual` block (see the module docstring) for a test split made of the
    old run's test examples then the new data's."""
    y_true = np.asarray(y_true).astype(np.int64)
    n_old = report["test"]["old"]
    k_old = len(report["old_classes"])
    new_part = slice(n_old, None)
    is_new_class = y_true[new_part] >= k_old
    after = accuracy(y_true[:n_old], y_score[:n_old])
    among_old = accuracy(y_true[:n_old], np.asarray(y_score)[:n_old, :k_old])
    step = {
        "step": len(lineage),
        "run": str(run_dir),
        "strategy": list(strategy),
        "classes": report["old_classes"] + report["new_classes"],
        "new_classes": list(report["new_classes"]),
        "old_before": before["accuracy"],
        "old_after": after,
        "old_among_old": among_old,
        "forgetting": None if after is None else before["accuracy"] - after,
        "new": accuracy(y_true[new_part][is_new_class], y_score[new_part][is_new_class]),
        "overall": accuracy(y_true, y_score),
    }
    return {
        "past_run": report["past_run"],
        "strategy": list(strategy),
        "old_classes": {
            "n": n_old,
            "before": before["accuracy"],
            "after": after,
            "among_old": among_old,
        },
        "forgetting": step["forgetting"],
        "new_classes": {"n": int(is_new_class.sum()), "accuracy": step["new"]},
        "new_data": {
            "n": len(y_true) - n_old,
            "accuracy": accuracy(y_true[new_part], y_score[new_part]),
        },
        "overall": {"n": len(y_true), "accuracy": step["overall"]},
        "lineage": [*lineage, step],
    }


def summary_lines(block: dict) -> list[str]:
    """The terminal lines of a `continual` block."""

    def pct(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    old = block["old_classes"]
    return [
        f"continual ({'+'.join(block['strategy'])}, from {block['past_run']}):",
        f"  old classes  before {pct(old['before'])}  after {pct(old['after'])}  "
        f"forgetting {pct(block['forgetting'])}  (n={old['n']}; among the old classes only "
        f"{pct(old.get('among_old'))})",
        f"  new classes  {pct(block['new_classes']['accuracy'])}  (n={block['new_classes']['n']})"
        f"; new data {pct(block['new_data']['accuracy'])}  (n={block['new_data']['n']})",
        f"  overall      {pct(block['overall']['accuracy'])}  (n={block['overall']['n']})",
    ]


def figure_lineage(lineage: list[dict]):
    """Accuracy per step of a lineage: old classes before and after, new classes, overall."""
    from matplotlib.figure import Figure

    steps = [s["step"] for s in lineage]
    figure = Figure(figsize=(max(4.0, 1.4 * len(steps) + 2), 3.6))
    ax = figure.subplots()
    series = (
        ("overall", "overall", "o-"),
        ("old_before", "old classes, before", "s--"),
        ("old_after", "old classes, after", "s-"),
        ("new", "new classes", "^-"),
    )
    for key, label, style in series:
        points = [(s["step"], s[key]) for s in lineage if s.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label)
    ax.set_xticks(steps, [f"{s['step']}\n+{len(s['new_classes'])} cl." for s in lineage])
    ax.set_xlabel("step (classes added)")
    ax.set_ylabel("test accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    figure.tight_layout()
    return figure


def plot_lineage(lineage: list[dict], out_png: str | Path) -> Path:
    buffer = io.BytesIO()
    figure_lineage(lineage).savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(out_png, buffer.getvalue())
