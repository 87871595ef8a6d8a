"""Regression: one number per example, a linear output, mean squared error."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from tltk.heads.base import HeadSpec
from tltk.heads.scoring import num
from tltk.recipe import HeadConfig


class RegressionHead(HeadSpec):
    """One linear output trained with MSE; labels are float32 values [N]. Evaluated with MAE,
    RMSE and R²; served as `prediction` float32 [N]. Class names are unused (no labels.txt)."""

    name = "regression"
    label_kind = "value"
    activation = None
    labels_file = False
    parity_output = "prediction"

    def num_outputs(self, num_classes: int) -> int:
        return 1

    def loss(self, cfg: HeadConfig) -> keras.losses.Loss:
        return keras.losses.MeanSquaredError()

    def metrics(self, num_classes: int, top_k: int) -> list[keras.metrics.Metric]:
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def predictions(self, scores: np.ndarray) -> np.ndarray:
        return scores.reshape(-1)

    def evaluate(self, y_true, y_score, class_names, *, top_k, threshold) -> dict:
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        y_true = y_true.astype(float).reshape(len(y_true), -1)
        y_pred = y_score.astype(float).reshape(len(y_score), -1)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"regression: y_true {y_true.shape} vs y_pred {y_pred.shape}")
        return {
            "task": self.name,
            "n": len(y_true),
            "mae": mean_absolute_error(y_true, y_pred),
            "rmse": math.sqrt(mean_squared_error(y_true, y_pred)),
            "r2": r2_score(y_true, y_pred) if len(y_true) > 1 else None,  # undefined for one
        }

    def headline(self, metrics: dict) -> list[str]:
        return [f"{key} {num(metrics.get(key))}" for key in ("mae", "rmse", "r2")]

    def check_outputs(self, width: int, class_names: list[str]) -> None:
        if width != 1:
            raise ValueError(
                f"regression export: the model outputs {width} values per example, not 1"
            )

    def serving_outputs(self, scores: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
        return {"prediction": tf.reshape(scores, [-1])}

    def output_doc(self) -> dict[str, str]:
        return {"prediction": "float32 [N]: the predicted value"}

    def prediction_rows(self, outputs: dict[str, np.ndarray], top_k: int) -> list[dict]:
        return [{"prediction": float(p)} for p in outputs["prediction"]]
