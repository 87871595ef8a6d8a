"""`HeadSpec`: the contract one task type fulfils (see `tltk.heads` for the whole picture), and
`ClassScoresHead`, the shared half of the types whose outputs are one score per class."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import keras
import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tltk.recipe import HeadConfig


class HeadSpec:
    """One task type: what its head outputs, how it learns, how it is scored and served.

    Subclasses set the class attributes and implement the methods that raise here. A spec
    holds no state; `tltk.heads.get_head(name)` returns the one instance of each.
    """

    name: ClassVar[str]
    """The registry name, `head.type` in a recipe and `task` in metrics.json and tltk.json."""
    label_kind: ClassVar[str]
    """What one example's label is, for the data readers: "class" (one class name),
    "classes" (a set of names) or "value" (a number)."""
    activation: ClassVar[str | None]
    """The scores layer's activation."""
    class_weights: ClassVar[bool] = False
    """Whether `head.class_weight` (Keras' per-class sample weights) applies."""
    labels_file: ClassVar[bool] = True
    """Whether an export writes assets.extra/labels.txt (class names in score order)."""
    parity_output: ClassVar[str]
    """The serving output the export's parity check compares with `model.predict`."""

    def num_outputs(self, num_classes: int) -> int:
        """The scores layer's width for a data set of `num_classes` classes."""
        return num_classes

    def loss(self, cfg: HeadConfig) -> keras.losses.Loss:
        raise NotImplementedError

    def metrics(self, num_classes: int, top_k: int) -> list[keras.metrics.Metric]:
        """The metrics `compile` gets; `num_classes` is the scores' width."""
        raise NotImplementedError

    # ----------------------------------------------------------------------- labels

    def label_array(self, labels: np.ndarray) -> np.ndarray:
        """A split's labels as tf.data holds them (compact: one-hot comes in `encode_label`)."""
        return np.asarray(labels).astype(np.float32, copy=False)

    def encode_label(self, label: tf.Tensor, num_classes: int) -> tf.Tensor:
        """One example's label from `label_array`, as the loss takes it (inside tf.data)."""
        return label

    def targets(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """A split's labels as the loss sees them (numpy, float32)."""
        return np.asarray(labels).astype(np.float32)

    def predictions(self, scores: np.ndarray) -> np.ndarray:
        """`model.predict`'s output as `targets` and `evaluate` pair it with."""
        return scores

    # ----------------------------------------------------------------------- evaluation

    def evaluate(
        self,
        y_true: np.ndarray,
        y_score: np.ndarray,
        class_names: list[str],
        *,
        top_k: int,
        threshold: float,
    ) -> dict:
        """metrics.json's numbers for one split, starting with "task" (see
        `tltk.evaluate.compute_metrics`)."""
        raise NotImplementedError

    def headline(self, metrics: dict) -> list[str]:
        """The headline numbers of `metrics` for the terminal, e.g. ["mae 0.1234", ...]."""
        raise NotImplementedError

    def figures(self, metrics: dict) -> dict[str, Figure]:
        """Plots of `metrics`, by file stem (written as STEM.png beside metrics.json)."""
        return {}

    # ----------------------------------------------------------------------- serving

    def check_outputs(self, width: int, class_names: list[str]) -> None:
        """ValueError when a model of `width` outputs cannot be exported with `class_names`."""
        raise NotImplementedError

    def serving_outputs(self, scores: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
        """The serving signature's output dict from the model's float32 scores."""
        raise NotImplementedError

    def output_doc(self) -> dict[str, str]:
        """Each serving output's type and meaning (the model card's signature table)."""
        raise NotImplementedError

    def prediction_rows(self, outputs: dict[str, np.ndarray], top_k: int) -> list[dict]:
        """One result dict per example from the serving outputs (`tltk predict`)."""
        raise NotImplementedError


class ClassScoresHead(HeadSpec):
    """A type whose model outputs one score per class: served as scores, class names, best
    class and its score; predicted as the `top_k` best classes."""

    parity_output = "scores"
    score_kind: ClassVar[str] = "probability"
    """What a score is, in the output doc."""

    def check_outputs(self, width: int, class_names: list[str]) -> None:
        if width != len(class_names):
            raise ValueError(
                f"the model outputs {width} scores but {len(class_names)} class names were given"
            )

    def check_scores(self, y_score: np.ndarray, class_names: list[str]) -> None:
        if y_score.ndim != 2 or y_score.shape[1] != len(class_names):
            raise ValueError(
                f"y_score must be [N, {len(class_names)}] (one column per class name); "
                f"got shape {y_score.shape}"
            )

    def serving_outputs(self, scores: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
        names = tf.constant(class_names, dtype=tf.string)
        return {
            "scores": scores,
            "classes": tf.tile(names[tf.newaxis], [tf.shape(scores)[0], 1]),
            "top_class": tf.gather(names, tf.argmax(scores, axis=-1)),
            "top_score": tf.reduce_max(scores, axis=-1),
        }

    def output_doc(self) -> dict[str, str]:
        return {
            "scores": f"float32 [N, K]: {self.score_kind} of each class, in class order "
            "(labels.txt)",
            "classes": "string [N, K]: the class names, parallel to scores",
            "top_class": "string [N]: the class with the highest score",
            "top_score": "float32 [N]: that highest score",
        }

    def prediction_rows(self, outputs: dict[str, np.ndarray], top_k: int) -> list[dict]:
        rows = []
        for scores, names in zip(outputs["scores"], outputs["classes"], strict=True):
            best = np.argsort(-scores, kind="stable")[:top_k]
            rows.append(
                {"top": [{"label": names[c].decode(), "score": float(scores[c])} for c in best]}
            )
        return rows
