"""Learning curves of a whole run: loss, the main metric and the learning rate on one epoch
axis, with the phases (head, fine-tune, ...) marked; and the learning-rate range test's curve.

Figures are built with `matplotlib.figure.Figure` directly, never pyplot, so a notebook's
inline backend and global figure state are left alone; a notebook displays the Figure returned
by `figure_learning_curves` inline.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from pathlib import Path

from tltk.io import atomic_write_bytes

# Preferred "main metric" columns, best first; otherwise the first non-loss metric in the file.
_MAIN_METRICS = (
    "accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "binary_accuracy",
    "auc",
    "f1_score",
    "mae",
    "mean_absolute_error",
    "rmse",
    "root_mean_squared_error",
)
_LR_COLUMNS = ("learning_rate", "lr")


def read_history_csv(history_csv: str | Path) -> dict[str, list[float]]:
    """Keras CSVLogger output -> {"epoch": [...], column: [...]}, sorted by epoch.

    Epochs repeated after a resumed run keep their last row. Empty cells become NaN.
    """
    rows: dict[int, dict[str, str]] = {}
    with open(history_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("epoch") not in (None, ""):
                rows[int(float(row["epoch"]))] = row  # later rows win
    columns = [c for row in rows.values() for c in row if c]
    columns = list(dict.fromkeys(columns))  # union, in first-seen order
    out: dict[str, list[float]] = {c: [] for c in columns}
    for epoch in sorted(rows):
        for column in columns:
            out[column].append(_float(rows[epoch].get(column)))
    return out


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def main_metric(columns: list[str] | dict) -> str | None:
    """The metric to plot beside the loss: accuracy if logged, else the first non-loss one."""
    names = [c for c in columns if not c.startswith("val_")]
    for name in _MAIN_METRICS:
        if name in names:
            return name
    skip = {"epoch", "loss", *_LR_COLUMNS}
    return next((c for c in names if c not in skip and not c.endswith("loss")), None)


def figure_learning_curves(history_csv: str | Path, phases: list[dict]):
    """A `matplotlib.figure.Figure` with stacked subplots sharing the epoch axis: loss
    (train/val), the main metric (train/val) and the learning rate (log scale), each present
    only when logged. `phases` are {"name", "start_epoch", "end_epoch" (exclusive)} in the
    CSV's 0-based epochs; dashed lines separate them and their names are written on top.
    """
    from matplotlib.figure import Figure

    history = read_history_csv(history_csv)
    epochs = history.get("epoch", [])
    metric = main_metric(list(history))
    lr = next((c for c in _LR_COLUMNS if c in history), None)
    panels = [("loss", "loss", False)] if "loss" in history else []
    panels += [(metric, metric, False)] if metric else []
    panels += [(lr, "learning rate", True)] if lr else []
    if not panels:
        panels = [("loss", "loss", False)]  # an empty file still gives a (blank) figure

    figure = Figure(figsize=(8.0, 2.4 * len(panels) + 0.8))
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    marker = "o" if len(epochs) <= 30 else None
    for ax, (column, label, log) in zip(axes, panels, strict=True):
        for name, style in ((column, "-"), (f"val_{column}", "--")):
            if name not in history:
                continue
            points = [
                (e, v) for e, v in zip(epochs, history[name], strict=True) if math.isfinite(v)
            ]
            if log:
                points = [(e, v) for e, v in points if v > 0]
            if points:
                xs, ys = zip(*points, strict=True)
                kind = "val" if name.startswith("val_") else "train"
                ax.plot(xs, ys, style, marker=marker, markersize=3, label=kind)
        if log and ax.lines:
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if len(ax.lines) > 1:
            ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("epoch")
    if epochs:
        axes[-1].set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    _mark_phases(axes, phases, max(epochs) + 1 if epochs else None)
    figure.tight_layout()
    return figure


def _mark_phases(axes, phases: list[dict], last_epoch: int | None) -> None:
    """Dashed lines between phases (between the last epoch of one and the first of the next);
    each phase's name centred over its epochs, above the top subplot."""
    top = axes[0]
    transform = top.get_xaxis_transform()  # x in epochs, y in axes fraction
    for i, phase in enumerate(phases):
        if phase.get("start_epoch") is None:
            continue  # a phase not started yet (an interrupted run's state)
        start = int(phase["start_epoch"])
        end = int(phase.get("end_epoch", start))
        if last_epoch is not None:
            end = min(end, last_epoch)
        if i > 0:
            for ax in axes:
                ax.axvline(start - 0.5, color="grey", linestyle="--", linewidth=1)
        if end > start:
            name = phase.get("name") or f"phase{i}"
            top.text((start + end - 1) / 2, 1.02, name, transform=transform,
                     ha="center", va="bottom", fontsize=9)  # fmt: skip


def plot_learning_curves(history_csv: str | Path, phases: list[dict], out_png: str | Path) -> Path:
    """Write `figure_learning_curves(...)` to `out_png`, atomically. Returns the path."""
    figure = figure_learning_curves(history_csv, phases)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(out_png, buffer.getvalue())


def figure_lr_find(learning_rates, losses, smoothed, suggestion: float, minimum: float, title=""):
    """The range test's loss against the learning rate (log scale): each batch's loss, the
    smoothed curve, the smoothed minimum and the suggestion (a vertical line, labelled)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.2))
    ax = figure.subplots()
    ax.plot(learning_rates, losses, color="0.75", linewidth=1, label="loss (each batch)")
    ax.plot(learning_rates, smoothed, color="C0", linewidth=2, label="smoothed")
    ax.axvline(minimum, color="0.4", linestyle=":", label=f"minimum {minimum:.2g}")
    ax.axvline(suggestion, color="C3", linestyle="--", label=f"suggestion {suggestion:.2g}")
    ax.set_xscale("log")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:  # the exploding tail would squash the interesting part
        low, high = min(finite), max(finite[0], min(finite) * 2.5)
        ax.set_ylim(low - 0.1 * (high - low) - 1e-6, high + 0.1 * (high - low) + 1e-6)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:  # wrapped: a later phase's title names the phases trained first
        ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=10)
    figure.tight_layout()
    return figure


def plot_lr_find(result, out_png: str | Path, title: str = "") -> Path:
    """Write `figure_lr_find` of an `LRFinderResult` to `out_png`, atomically."""
    figure = figure_lr_find(
        result.learning_rates,
        result.losses,
        result.smoothed,
        result.suggestion,
        result.minimum,
        title,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(out_png, buffer.getvalue())
