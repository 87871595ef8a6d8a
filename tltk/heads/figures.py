"""Figures of evaluation metrics, built with `matplotlib.figure.Figure` (no pyplot state)."""

from __future__ import annotations

import numpy as np


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
