"""`evaluate.tta: flip`: the evaluation's scores are the mean of each image's and its mirror's."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tltk.recipe import RecipeError, load_recipe
from tltk.tta import flip_averaged


def test_the_tta_key_is_validated():
    assert load_recipe({"name": "t", "evaluate": {"tta": "flip"}}).evaluate.tta == "flip"
    assert load_recipe({"name": "t"}).evaluate.tta == "none"
    with pytest.raises(RecipeError, match=r"evaluate\.tta"):
        load_recipe({"name": "t", "evaluate": {"tta": "rotate"}})
    text = {"name": "t", "modality": "text", "backbone": {"name": "models/x"}}
    with pytest.raises(RecipeError, match="evaluate.tta: flip mirrors images; a text recipe"):
        load_recipe({**text, "evaluate": {"tta": "flip"}})


def test_flip_averaged_is_the_mean_of_the_image_and_its_mirror_scores():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    images = np.random.default_rng(0).uniform(size=(10, 4, 6, 1)).astype("float32")
    padded = np.concatenate([images, np.zeros((2, 4, 6, 1), "float32")])  # 3 batches of 4
    ds = tf.data.Dataset.from_tensor_slices((padded, np.zeros(12))).batch(4)
    averaged = flip_averaged(model, ds, 10)
    plain = model.predict(images, verbose=0)
    mirror = model.predict(images[:, :, ::-1], verbose=0)
    assert averaged.shape == (10, 3)
    np.testing.assert_allclose(averaged, (plain + mirror) / 2, atol=1e-6)
    assert not np.allclose(plain, mirror, atol=1e-3)  # the mirror really is another input
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-5)  # still probabilities
