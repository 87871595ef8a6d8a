"""Multi-class classification: one class per example, softmax scores, cross-entropy."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltk.heads.base import ClassScoresHead
from tltk.heads.figures import figure_confusion_matrix
from tltk.heads.scoring import averages, num, per_class
from tltk.recipe import HeadConfig


class ClassificationHead(ClassScoresHead):
    """Softmax over K classes. Labels are class ids, one-hot in tf.data so that label
    smoothing, MixUp and CutMix work; evaluated with accuracy, top-k, P/R/F1 and a confusion
    matrix (also drawn as confusion_matrix.png)."""

    name = "classification"
    label_kind = "class"
    activation = "softmax"
    class_weights = True

    def loss(self, cfg: HeadConfig) -> keras.losses.Loss:
        return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)

    def metrics(self, num_classes: int, top_k: int) -> list[keras.metrics.Metric]:
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if num_classes > top_k:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=top_k, name=f"top{top_k}"))
        return metrics

    def label_array(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim == 2:  # already one-hot
            return labels.astype(np.float32)
        # One-hot in the map: N x K floats need not sit in memory.
        return labels.astype(np.int64, copy=False)

    def encode_label(self, label: tf.Tensor, num_classes: int) -> tf.Tensor:
        if label.shape.rank == 0:
            return tf.one_hot(label, num_classes, dtype=tf.float32)
        return label

    def targets(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            return labels.astype(np.float32)
        return keras.utils.to_categorical(labels, num_classes).astype(np.float32)

    def evaluate(self, y_true, y_score, class_names, *, top_k, threshold) -> dict:
        from sklearn.metrics import (
            confusion_matrix,
            precision_recall_fscore_support,
            top_k_accuracy_score,
        )

        self.check_scores(y_score, class_names)
        n_classes = len(class_names)
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
            "task": self.name,
            "n": len(y_true),
            "num_classes": n_classes,
            "accuracy": float(np.mean(y_pred == y_true)),
            "top_1_accuracy": float(np.mean(y_pred == y_true)),
            "top_k": k,
            "top_k_accuracy": top,
        }
        out.update(averages(y_true, y_pred, class_names, per[3], ("macro", "weighted")))
        out["per_class"] = per_class(class_names, *per)
        matrix = confusion_matrix(y_true, y_pred, labels=labels)
        out["confusion_matrix"] = {"labels": class_names, "matrix": matrix.tolist()}
        return out

    def headline(self, metrics: dict) -> list[str]:
        head = [f"accuracy {num(metrics.get('accuracy'))}"]
        if metrics.get("top_k", 1) > 1:
            head.append(f"top-{metrics['top_k']} {num(metrics.get('top_k_accuracy'))}")
        head.append(f"macro F1 {num(metrics.get('f1_macro'))}")
        head.append(f"weighted F1 {num(metrics.get('f1_weighted'))}")
        return head

    def figures(self, metrics: dict) -> dict:
        if "confusion_matrix" not in metrics:
            return {}
        return {"confusion_matrix": figure_confusion_matrix(metrics)}
