"""compute_metrics on small hand-checked arrays; metrics.json and the confusion-matrix PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tltk.evaluate import compute_metrics, format_summary, write_metrics

NAMES = ["cat", "dog", "fox"]
# true 0,0,0,1,1,2; argmax 0,0,1,1,2,2; top-2 misses only example 4 (true 1, scores rank 2,0,1)
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_SCORE = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.6, 0.3, 0.1],
        [0.3, 0.6, 0.1],
        [0.2, 0.7, 0.1],
        [0.35, 0.05, 0.6],
        [0.1, 0.2, 0.7],
    ]
)


def test_classification_by_hand():
    m = compute_metrics(Y_TRUE, Y_SCORE, NAMES, top_k=2, loss=0.5)
    assert m["task"] == "classification" and m["loss"] == 0.5 and m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6) and m["top_1_accuracy"] == pytest.approx(4 / 6)
    assert m["top_k"] == 2 and m["top_k_accuracy"] == pytest.approx(5 / 6)
    # precision 1, 1/2, 1/2; recall 2/3, 1/2, 1; F1 4/5, 1/2, 2/3; support 3, 2, 1
    expected = {"cat": (1, 2 / 3, 0.8, 3), "dog": (0.5, 0.5, 0.5, 2), "fox": (0.5, 1, 2 / 3, 1)}
    for name, (p, r, f, s) in expected.items():
        row = m["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, r, f))
        assert row["support"] == s and isinstance(row["support"], int)
    assert m["precision_macro"] == pytest.approx(2 / 3)
    assert m["recall_macro"] == pytest.approx(13 / 18)
    assert m["f1_macro"] == pytest.approx(59 / 90)
    assert m["precision_weighted"] == pytest.approx(0.75)
    assert m["recall_weighted"] == pytest.approx(4 / 6)
    assert m["f1_weighted"] == pytest.approx(61 / 90)
    assert m["confusion_matrix"] == {"labels": NAMES, "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}


def test_macro_averages_cover_the_classes_present():
    """fox has no example in the split; one cat is predicted as fox. Macro averages are over
    cat and dog; the fox row stays; the fox prediction still costs cat's recall."""
    y_true = np.array([0, 0, 0, 1, 1])
    y_score = np.array(
        [[0.9, 0.1, 0], [0.8, 0.2, 0], [0.1, 0.2, 0.7], [0.2, 0.8, 0], [0.6, 0.4, 0]]
    )
    m = compute_metrics(y_true, y_score, NAMES)
    # cat: precision 2/3, recall 2/3; dog: precision 1, recall 1/2
    assert m["absent_classes"] == ["fox"] and m["num_classes"] == 3
    assert m["precision_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert m["recall_weighted"] == pytest.approx(3 / 5)
    assert m["per_class"]["fox"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["confusion_matrix"]["matrix"][0] == [2, 0, 1]
    full = compute_metrics(Y_TRUE, Y_SCORE, NAMES)
    assert full["absent_classes"] == [] and full["f1_macro"] == pytest.approx(59 / 90)
    text = format_summary({**m, "split": "test"})
    assert "no test example of 1 class(es): fox (macro averages cover the other 2)" in text


def test_one_hot_labels_and_top_k_capped_at_num_classes():
    m = compute_metrics(np.eye(3)[Y_TRUE], Y_SCORE, NAMES)  # top_k=5 > K=3
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["top_k"] == 3 and m["top_k_accuracy"] == 1.0
    binary = compute_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"])
    assert binary["accuracy"] == 1.0 and binary["top_k"] == 2


def test_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        compute_metrics(Y_TRUE, Y_SCORE, ["cat", "dog"])


def test_multilabel_by_hand():
    y_true = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    y_score = np.array([[0.9, 0.2, 0.1], [0.4, 0.8, 0.6], [0.7, 0.15, 0.2], [0.6, 0.1, 0.1]])
    m = compute_metrics(y_true, y_score, ["a", "b", "c"], task="multilabel")
    assert m["subset_accuracy"] == 0.25 and m["hamming_loss"] == 0.25
    assert (m["precision_micro"], m["recall_micro"], m["f1_micro"]) == pytest.approx(
        (3 / 5, 3 / 4, 2 / 3)
    )
    # Macro over a and b: c has no positive example (support 0), so no recall to average;
    # its one false positive still counts in the micro precision above.
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx(
        (5 / 6, 3 / 4, 11 / 15)
    )
    assert m["absent_classes"] == ["c"] and m["per_class"]["c"]["support"] == 0
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2, "roc_auc": 1.0}
    )
    assert m["per_class"]["b"]["roc_auc"] == 0.75
    assert m["per_class"]["c"]["roc_auc"] is None  # class c is never present: AUC undefined
    assert m["roc_auc_macro"] == pytest.approx(0.875) and m["roc_auc_classes"] == 2
    assert m["confusion_matrices"] == {
        "a": [[1, 1], [0, 2]],
        "b": [[2, 0], [1, 1]],
        "c": [[3, 1], [0, 0]],
    }


def test_regression_by_hand():
    m = compute_metrics(
        np.array([1, 2, 3, 4]), np.array([[1.5], [2], [2], [5]]), [], task="regression"
    )
    assert (m["mae"], m["rmse"], m["r2"]) == pytest.approx((0.625, 0.75, 0.55))


def test_write_metrics_round_trip_and_png(tmp_path):
    m = compute_metrics(Y_TRUE, Y_SCORE, NAMES, loss=0.25)
    written = write_metrics(m, tmp_path / "eval")
    assert set(written) == {"metrics", "confusion_matrix"}
    assert json.loads(written["metrics"].read_text()) == m
    with Image.open(written["confusion_matrix"]) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 200
    assert not list((tmp_path / "eval").glob(".*.tmp"))  # atomic writes left no temp files


def test_many_classes_png_and_no_plot(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"class_{i}" for i in range(60)]
    m = compute_metrics(rng.integers(0, 60, 300), rng.dirichlet(np.ones(60), 300), names)
    written = write_metrics(m, tmp_path)
    with Image.open(written["confusion_matrix"]) as image:
        assert image.format == "PNG" and image.width > 1000
    assert set(write_metrics(m, tmp_path / "np", plots=False)) == {"metrics"}


def test_format_summary():
    text = format_summary(compute_metrics(Y_TRUE, Y_SCORE, NAMES, top_k=2, loss=0.5))
    assert "accuracy 0.6667" in text and "top-2 0.8333" in text and "macro F1 0.6556" in text
    assert text.splitlines()[2].split() == ["cat", "1.0000", "0.6667", "0.8000", "3"]
    assert "mae 0.6250" in format_summary(
        compute_metrics(np.array([1, 2, 3, 4]), np.array([1.5, 2, 2, 5]), [], task="regression")
    )
