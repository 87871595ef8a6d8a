"""Learning curves over two phases, from a CSVLogger file with a resumed (duplicate) epoch."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tltk.plots import figure_learning_curves, plot_learning_curves, read_history_csv

# CSVLogger writes columns sorted; the run was killed after epoch 2 and resumed at epoch 2.
CSV = """epoch,accuracy,learning_rate,loss,val_accuracy,val_loss
0,0.40,0.001,1.50,0.45,1.40
1,0.55,0.001,1.20,0.58,1.10
2,0.60,0.001,1.00,0.61,1.05
2,0.62,0.001,0.98,0.63,1.00
3,0.70,0.0001,0.80,0.68,0.90
4,0.75,0.0001,0.70,0.70,0.85
"""
PHASES = [
    {"name": "head", "start_epoch": 0, "end_epoch": 3},
    {"name": "finetune", "start_epoch": 3, "end_epoch": 5},
    {"name": "never started", "train": "all", "done": False},
]


def test_duplicate_epoch_keeps_last_row(tmp_path):
    (tmp_path / "history.csv").write_text(CSV)
    history = read_history_csv(tmp_path / "history.csv")
    assert history["epoch"] == [0, 1, 2, 3, 4]
    assert history["accuracy"][2] == 0.62 and history["val_loss"][2] == 1.00


def test_learning_curves_figure_and_png(tmp_path):
    (tmp_path / "history.csv").write_text(CSV)
    figure = figure_learning_curves(tmp_path / "history.csv", PHASES)
    loss, metric, lr = figure.axes
    assert (loss.get_ylabel(), metric.get_ylabel(), lr.get_ylabel()) == (
        "loss",
        "accuracy",
        "learning rate",
    )
    assert lr.get_yscale() == "log"
    np.testing.assert_array_equal(loss.lines[0].get_xdata(), [0, 1, 2, 3, 4])
    assert [t.get_text() for t in loss.texts] == ["head", "finetune"]
    boundaries = [line for line in metric.lines if line.get_linestyle() == "--" and
                  list(line.get_xdata()) == [2.5, 2.5]]  # fmt: skip
    assert len(boundaries) == 1

    out = plot_learning_curves(tmp_path / "history.csv", PHASES, tmp_path / "plots" / "lc.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width >= 600 and image.height >= 400


def test_regression_history_plots_mae(tmp_path):
    csv = (
        "epoch,learning_rate,loss,mae,val_loss,val_mae\n0,.01,4,1.8,3.5,1.7\n1,.01,3,1.5,3.1,1.6\n"
    )
    (tmp_path / "h.csv").write_text(csv)
    figure = figure_learning_curves(tmp_path / "h.csv", [{"name": "all", "start_epoch": 0}])
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "mae", "learning rate"]
