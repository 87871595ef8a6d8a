"""Multi-label classification: a set of classes per example, independent sigmoid scores."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tltk.heads.base import ClassScoresHead
from tltk.heads.scoring import averages, num, per_class
from tltk.recipe import HeadConfig


class MultiLabelHead(ClassScoresHead):
    """One sigmoid per class and binary cross-entropy. Labels are multi-hot float32 [K];
    a class is predicted when its score reaches the threshold (0.5). Evaluated with subset
    accuracy, Hamming loss, micro/macro P/R/F1, ROC-AUC and one confusion matrix per class."""

    name = "multilabel"
    label_kind = "classes"
    activation = "sigmoid"
    score_kind = "independent (sigmoid) probability"

    def loss(self, cfg: HeadConfig) -> keras.losses.Loss:
        return keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing)

    def metrics(self, num_classes: int, top_k: int) -> list[keras.metrics.Metric]:
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
        ]

    def evaluate(self, y_true, y_score, class_names, *, top_k, threshold) -> dict:
        from sklearn.metrics import (
            hamming_loss,
            multilabel_confusion_matrix,
            precision_recall_fscore_support,
            roc_auc_score,
        )

        self.check_scores(y_score, class_names)
        y_true = (y_true >= 0.5).astype(int)  # accept float multi-hot
        y_pred = (y_score >= threshold).astype(int)
        out: dict[str, Any] = {
            "task": self.name,
            "n": len(y_true),
            "num_classes": len(class_names),
            "threshold": threshold,
            "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
            "hamming_loss": hamming_loss(y_true, y_pred),
        }
        per = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
        out.update(averages(y_true, y_pred, class_names, per[3], ("micro", "macro")))
        rows = per_class(class_names, *per)
        aucs = []
        for j, name in enumerate(class_names):  # ROC-AUC is undefined for one label value
            two = len(set(y_true[:, j])) == 2
            auc = roc_auc_score(y_true[:, j], y_score[:, j]) if two else None
            rows[name]["roc_auc"] = auc
            aucs += [] if auc is None else [auc]
        out["roc_auc_macro"] = float(np.mean(aucs)) if aucs else None
        out["roc_auc_classes"] = len(aucs)
        out["per_class"] = rows
        matrices = multilabel_confusion_matrix(y_true, y_pred)  # per class [[tn, fp], [fn, tp]]
        out["confusion_matrices"] = {
            name: m.tolist() for name, m in zip(class_names, matrices, strict=True)
        }
        return out

    def headline(self, metrics: dict) -> list[str]:
        head = [
            f"subset accuracy {num(metrics.get('subset_accuracy'))}",
            f"hamming loss {num(metrics.get('hamming_loss'))}",
            f"micro F1 {num(metrics.get('f1_micro'))}",
            f"macro F1 {num(metrics.get('f1_macro'))}",
        ]
        if metrics.get("roc_auc_macro") is not None:
            head.append(f"ROC-AUC {num(metrics['roc_auc_macro'])}")
        return head
