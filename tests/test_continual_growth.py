"""Head growth (old columns kept, new rows from a probe) and distillation (LwF) as Keras models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tltk.backbones.base import lookup
from tltk.continual.distill import DistillingModel, distillation_loss
from tltk.continual.features import SCORES_LAYER, scores_inputs
from tltk.continual.growth import copy_grown, probe_new_rows, probe_rows, set_new_rows
from tltk.model import build_model
from tltk.recipe import HeadConfig


def _models(k_old: int, k_new: int, hidden: int = 0):
    """A trained-looking old model (random weights, seeded) and a fresh wider one."""
    keras.utils.set_random_seed(1)
    head = HeadConfig(dropout=0.2, hidden_units=hidden)
    old = build_model(lookup("resnet8").build(None, 16), head, k_old)
    for i, w in enumerate(old.model.weights):  # not the fresh values: each must be copied
        value = np.random.default_rng(i).normal(0, 0.1, w.shape)
        w.assign((np.abs(value) + 1 if "variance" in w.path else value).astype("float32"))
    new = build_model(lookup("resnet8").build(None, 16), head, k_old + k_new)
    return old, new


def _logits(task_model, images):
    features = scores_inputs(task_model).predict(images, verbose=0)
    kernel, bias = task_model.model.get_layer(SCORES_LAYER).get_weights()
    return features @ kernel + bias


@pytest.mark.parametrize("hidden", [0, 8])
def test_grown_head_gives_the_old_classes_identical_logits_before_training(hidden):
    old, new = _models(3, 2, hidden)
    images = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    before = old.model.predict(images, verbose=0)
    assert copy_grown(old.model, new.model) == 3
    after = new.model.predict(images, verbose=0)
    assert after.shape == (6, 5) and np.all(np.isfinite(after)) and np.all(np.isfinite(before))
    # The old columns' logits are the old model's; so is their softmax among themselves.
    np.testing.assert_allclose(_logits(new, images)[:, :3], _logits(old, images), atol=1e-5)
    np.testing.assert_allclose(after[:, :3] / after[:, :3].sum(1, keepdims=True), before, atol=1e-5)
    # The probabilities themselves are not kept: the new columns take some of the mass.
    assert np.all(after[:, :3].sum(axis=1) < 1 - 1e-6)
    # Every other weight was copied (a fresh model would differ in its backbone).
    for a, b in zip(old.model.layers, new.model.layers, strict=True):
        if a.name != SCORES_LAYER:
            for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
                np.testing.assert_array_equal(wa, wb)


def test_growing_a_different_model_is_refused():
    old, _ = _models(3, 1)
    other = build_model(lookup("resnet8").build(None, 16), HeadConfig(hidden_units=4), 4)
    with pytest.raises(ValueError, match="layers|weights"):
        copy_grown(old.model, other.model)


def _blobs(k: int, n: int, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    labels = np.repeat(np.arange(k), n)
    return centres[labels] + rng.normal(0, 0.5, (len(labels), d)), labels, centres


def test_probe_fits_the_new_rows_against_the_fixed_old_ones():
    features, labels, centres = _blobs(4, 30)
    # Old rows: a good classifier of classes 0, 1 (the class centres as weights).
    old_kernel, old_bias = centres[:2].T.copy(), -0.5 * (centres[:2] ** 2).sum(1)
    kernel, bias = probe_rows(features, labels, old_kernel, old_bias, 4)
    assert kernel.shape == (6, 2) and bias.shape == (2,)
    logits = features @ np.concatenate([old_kernel, kernel], 1) + np.concatenate([old_bias, bias])
    right = logits.argmax(1) == labels
    assert right[labels >= 2].mean() > 0.95  # the new classes are learnt ...
    assert right[labels < 2].mean() > 0.95  # ... and the old ones still win their examples
    # Regularised (0.5 |W|^2 / C): a smaller C gives smaller rows, and deterministic results.
    small, _ = probe_rows(features, labels, old_kernel, old_bias, 4, c=0.01)
    assert np.linalg.norm(small) < np.linalg.norm(kernel)
    again, _ = probe_rows(features, labels, old_kernel, old_bias, 4)
    np.testing.assert_array_equal(again, kernel)


def test_new_rows_from_new_classes_alone_leave_the_old_classes_reachable():
    # No example of an old class (finetune, distill): fitted against the fixed old rows, the
    # new rows' biases grow without bound and the old classes lose every example before any
    # training; fitted among the new classes, both keep their examples.
    features, labels, _ = _blobs(4, 30, seed=3)
    new = labels >= 2
    # The old rows: a softmax classifier of classes 0, 1 trained on their examples alone.
    old_kernel, old_bias = probe_rows(
        features[~new], labels[~new], np.zeros((6, 0)), np.zeros(0), 2
    )
    # Without a val split, the new biases are centred on the old ones.
    centred = probe_new_rows(features[new], labels[new], old_kernel, old_bias, 4)
    assert "among the new classes" in centred[2] and "centred on the old ones" in centred[2]
    assert float(centred[1].mean()) == pytest.approx(float(old_bias.mean()), abs=1e-4)

    def right(kernel, bias, *_):
        logits = features @ np.concatenate([old_kernel, kernel], 1)
        return (logits + np.concatenate([old_bias, bias])).argmax(1) == labels

    # With one (old and new classes: another draw of the same blobs), shifted by its loss,
    # which gives back old examples the centring lost (0.72 -> 0.80 here).
    val_features, val_labels, _ = _blobs(4, 30, seed=3)
    val_features = val_features + np.random.default_rng(4).normal(0, 0.5, val_features.shape)
    shifted = probe_new_rows(features[new], labels[new], old_kernel, old_bias, 4,
                             val=(val_features, val_labels))  # fmt: skip
    assert "shifted by the val loss" in shifted[2]
    assert right(*shifted).mean() > right(*centred).mean() + 0.02
    assert right(*shifted)[~new].mean() > 0.75 and right(*shifted)[new].mean() > 0.9
    unbounded = probe_rows(features[new], labels[new], old_kernel, old_bias, 4)
    assert right(*unbounded)[~new].mean() < 0.5  # what growth did before
    # With old examples among them, the new rows are fitted against the fixed old ones.
    fixed = probe_new_rows(features, labels, old_kernel, old_bias, 4)
    np.testing.assert_array_equal(
        fixed[0], probe_rows(features, labels, old_kernel, old_bias, 4)[0]
    )


def test_new_rows_are_fitted_on_standardised_features_so_their_scale_does_not_matter():
    # C means what it means for the first run's probe: the same data in other units (features
    # x 100, the old rows / 100, so the old scores are the same) gives the same scores.
    features, labels, centres = _blobs(4, 30)
    old_kernel, old_bias = centres[:2].T.copy(), -0.5 * (centres[:2] ** 2).sum(1)
    kernel, bias = probe_rows(features, labels, old_kernel, old_bias, 4, c=0.1)
    big_kernel, big_bias = probe_rows(100 * features, labels, old_kernel / 100, old_bias, 4, c=0.1)
    np.testing.assert_allclose(100 * features @ big_kernel + big_bias, features @ kernel + bias,
                               rtol=1e-3, atol=1e-3)  # fmt: skip
    # A warm start (the rows of another C) reaches the same optimum: the fit is convex.
    warm, _ = probe_rows(features, labels, old_kernel, old_bias, 4, c=0.1, start=(kernel * 3, bias))
    np.testing.assert_allclose(warm, kernel, atol=2e-3)


def _val_loss(features, labels, old_kernel, old_bias, rows):
    z = np.concatenate([features @ old_kernel + old_bias, features @ rows[0] + rows[1]], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    return float(-np.mean(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(axis=1))))


def test_the_new_rows_strength_is_the_grids_best_on_val():
    from tltk.probe import C_GRID

    features, labels, centres = _blobs(4, 40, seed=5)
    features = features + np.random.default_rng(9).normal(0, 2.0, features.shape)  # overlap
    train, val = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1
    old_kernel, old_bias = centres[:2].T * 0.05, np.zeros(2)  # weak, small old scores
    kernel, bias, how = probe_new_rows(features[train], labels[train], old_kernel, old_bias, 4,
                                       val=(features[val], labels[val]))  # fmt: skip
    losses = [
        _val_loss(features[val], labels[val], old_kernel, old_bias,
                  probe_rows(features[train], labels[train], old_kernel, old_bias, 4, c=c))
        for c in C_GRID
    ]  # fmt: skip
    best = C_GRID[int(np.argmin(losses))]
    assert f"C {best:g} chosen on {val.sum()} val examples" in how
    ours = _val_loss(features[val], labels[val], old_kernel, old_bias, (kernel, bias))
    assert ours == pytest.approx(min(losses), abs=1e-3)
    assert ours < _val_loss(features[val], labels[val], old_kernel, old_bias,
                            probe_rows(features[train], labels[train], old_kernel, old_bias, 4,
                                       c=100.0)) - 1e-3  # fmt: skip
    # Without old examples, the strength is chosen among the new classes' val examples.
    new = train & (labels >= 2)
    *_, how = probe_new_rows(features[new], labels[new], old_kernel, old_bias, 4,
                             val=(features[val], labels[val]))  # fmt: skip
    assert "among the new classes" in how and f"chosen on {(val & (labels >= 2)).sum()} val" in how


def test_set_new_rows_leaves_the_old_columns_alone():
    old, new = _models(2, 2)
    copy_grown(old.model, new.model)
    kernel, bias = new.model.get_layer(SCORES_LAYER).get_weights()
    d = kernel.shape[0]
    set_new_rows(new.model, 2, np.ones((d, 2), "float32"), np.full(2, 7.0, "float32"))
    k2, b2 = new.model.get_layer(SCORES_LAYER).get_weights()
    np.testing.assert_array_equal(k2[:, :2], kernel[:, :2])
    np.testing.assert_array_equal(b2, [bias[0], bias[1], 7.0, 7.0])


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_distillation_loss_is_hintons_kd_on_the_old_columns():
    rng = np.random.default_rng(0)
    z_teacher, z_student = rng.normal(0, 2, (5, 3)), rng.normal(0, 2, (5, 4))
    t = 2.0
    p, q = _softmax(z_teacher / t), _softmax(z_student[:, :3] / t)
    expected = t**2 * np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))
    got = distillation_loss(_softmax(z_teacher), _softmax(z_student).astype("float32"), t)
    assert float(got) == pytest.approx(expected, rel=1e-4)
    same = distillation_loss(_softmax(z_teacher), _softmax(z_teacher), t)
    assert abs(float(same)) < 1e-5


def _dense(k: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(k, activation="softmax")(inputs))


def test_distilling_model_adds_the_teachers_soft_targets_and_keeps_the_teacher():
    teacher, student = _dense(2, 0), _dense(3, 1)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    model = DistillingModel(student, teacher, temperature=2.0, weight=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy")
    frozen = [w.copy() for w in teacher.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    ce = keras.losses.categorical_crossentropy(y, student.predict(x, verbose=0))
    kd = distillation_loss(teacher.predict(x, verbose=0), student.predict(x, verbose=0), 2.0)
    # One batch, learning rate 0: the logged loss is CE + 0.5 * KD of these very models.
    assert history["loss"][0] == pytest.approx(float(np.mean(ce)) + 0.5 * float(kd), rel=1e-4)
    assert history["distill_loss"][0] == pytest.approx(float(kd), rel=1e-4)
    # Trained with a real rate, the student changes and the teacher does not.
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    before = student.get_weights()[0].copy()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert not np.allclose(student.get_weights()[0], before)
    for a, b in zip(frozen, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.predict(x, verbose=0), student.predict(x, verbose=0))


def test_growth_features_are_the_feature_caches_so_the_cache_can_start_from_them(tmp_path):
    from helpers import make_image_folder

    from tltk import tasks
    from tltk.continual.features import split_features
    from tltk.features import FeatureCache
    from tltk.recipe import load_recipe

    images = make_image_folder(tmp_path / "images", {"a": 4, "b": 4}, size=16)
    recipe = load_recipe({
        "name": "t", "data": {"path": str(images), "val_fraction": 0.0, "test_fraction": 0.0},
        "backbone": {"name": "resnet8", "weights": "none", "image_size": 16},
        "train": {"batch_size": 4},
    })  # fmt: skip
    data = tasks.load_data(recipe)
    task_model = tasks.build_task_model(recipe, data)
    cache = FeatureCache(recipe, data, task_model, 4, 1, folder=tmp_path / "features")
    assert cache.known("train") is None
    computed = cache.features("train")
    ours = split_features(recipe, task_model, data.splits["train"], 2, 3)  # another batch size
    np.testing.assert_allclose(ours, computed, rtol=1e-4, atol=1e-5)
    cache.clear()
    cache.put("train", ours)
    np.testing.assert_array_equal(cache.known("train"), ours)
    with pytest.raises(ValueError, match=r"features of 'train': \(7, "):
        cache.put("train", ours[:7])
