"""Test-time augmentation (`evaluate.tta`): a model's outputs averaged over each image and its
left-right mirror, on an evaluation dataset of `(images, labels)` batches."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tltk.data.pipeline import predict_unpadded


def mirrored(ds: tf.data.Dataset) -> tf.data.Dataset:
    """The same batches with every image flipped left to right ([batch, height, width, c])."""
    return ds.map(lambda images, *rest: (tf.image.flip_left_right(images), *rest))


def flip_averaged(model: keras.Model, ds: tf.data.Dataset, num_examples: int) -> np.ndarray:
    """The mean of `model`'s outputs (its scores: probabilities, or values) on the images of
    `ds` and on their mirrors, for the first `num_examples` (a padded last batch's blanks
    dropped)."""
    plain = predict_unpadded(model, ds, num_examples)
    flipped = predict_unpadded(model, mirrored(ds), num_examples)
    return (plain + flipped) / 2.0
