"""Heads: outputs per task, L1/L2, hidden layer, float32 under mixed precision; clipping."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tltk import phases as ph
from tltk.backbones import build_backbone
from tltk.heads import head_loss
from tltk.model import build_model
from tltk.recipe import BackboneConfig, HeadConfig, PhaseConfig


def tiny_backbone(name: str = "mobilenet_v3_small", size: int = 32):
    keras.utils.set_random_seed(0)
    return build_backbone(BackboneConfig(name=name, weights=None, image_size=size))


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("kind", "units"), [("classification", 4), ("multilabel", 4), ("regression", 1)]
)
def test_outputs_per_task(kind, units):
    tm = build_model(tiny_backbone(), HeadConfig(type=kind), units)
    scores = np.asarray(tm.model(np.full((2, 32, 32, 3), 128.0, "float32")))
    assert scores.shape == (2, units)
    if kind == "classification":
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    if kind == "multilabel":
        assert ((scores > 0) & (scores < 1)).all() and not np.allclose(scores.sum(axis=1), 1.0)


def test_hidden_layer_dropout_and_regularisers():
    cfg = HeadConfig(hidden_units=16, dropout=0.5, l1=1e-3, l2=1e-2)
    tm = build_model(tiny_backbone(), cfg, 3)
    names = [la.name for la in tm.groups["head"]]
    assert {"head_hidden", "head_dropout_hidden", "head_dropout", "head_scores"} <= set(names)
    hidden, scores = tm.model.get_layer("head_hidden"), tm.model.get_layer("head_scores")
    assert hidden.kernel.shape[-1] == 16 and scores.kernel.shape == (16, 3)
    # The penalty Keras adds to the loss is exactly l1*|W| + l2*W^2 over both head kernels.
    tm.model(np.zeros((1, 32, 32, 3), "float32"))
    expected = sum(
        1e-3 * np.abs(np.asarray(k)).sum() + 1e-2 * np.square(np.asarray(k)).sum()
        for k in (hidden.kernel, scores.kernel)
    )
    got = float(sum(np.asarray(x) for x in tm.model.losses))
    assert got == pytest.approx(expected, rel=1e-5)
    assert not build_model(tiny_backbone(), HeadConfig(), 3).model.losses  # none unless asked


def test_label_smoothing_reaches_the_loss():
    y, p = np.array([[1.0, 0.0]]), np.array([[0.9, 0.1]])
    plain = float(head_loss(HeadConfig())(y, p))
    smooth = float(head_loss(HeadConfig(label_smoothing=0.2))(y, p))
    # Targets become [0.9, 0.1]: cross-entropy -0.9 log 0.9 - 0.1 log 0.1.
    assert plain == pytest.approx(-np.log(0.9), rel=1e-5)
    assert smooth == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)), rel=1e-5)


def test_head_stays_float32_under_mixed_precision(mixed_precision):
    # resnet8 at 16 px: float16 kernels are emulated on a CPU, where a MobileNetV3-Small train
    # step took tens of seconds; any convolutional backbone shows the dtypes.
    tm = build_model(tiny_backbone("resnet8", 16), HeadConfig(hidden_units=8), 3)
    convs = [la for la in tm.backbone.model.layers if isinstance(la, keras.layers.Conv2D)]
    assert convs and all(la.compute_dtype == "float16" for la in convs)
    assert all(la.compute_dtype == "float32" for la in tm.groups["head"])
    assert tm.model.output.dtype == "float32"
    # A training step runs (Keras wraps the optimizer in loss scaling) and the loss is finite.
    tm.model.compile(keras.optimizers.Adam(1e-3), head_loss(HeadConfig()))
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    loss = tm.model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert isinstance(tm.model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm"])
def test_gradient_clipping_bounds_the_update(clip):
    """SGD with lr 1 moves a weight by exactly the (clipped) gradient."""
    phase = PhaseConfig(optimizer="sgd", learning_rate=1.0, momentum=0.0)
    opt = ph.make_optimizer(phase, steps_per_epoch=1, **{clip: 0.5})
    assert getattr(opt, clip) == 0.5
    w = keras.Variable(np.zeros(4, "float32"))
    opt.apply_gradients([(keras.ops.convert_to_tensor(np.full(4, 10.0, "float32")), w)])
    np.testing.assert_allclose(np.linalg.norm(np.asarray(w)), 0.5, rtol=1e-5)


def test_label_encoding_and_targets_per_type():
    import tensorflow as tf

    from tltk.heads import get_head

    cls, ml, reg = (get_head(n) for n in ("classification", "multilabel", "regression"))
    ids = np.array([2, 0])
    assert cls.label_array(ids).dtype == np.int64  # one-hot only in the map
    np.testing.assert_array_equal(cls.encode_label(tf.constant(2, tf.int64), 3), [0, 0, 1])
    np.testing.assert_array_equal(cls.targets(ids, 3), [[0, 0, 1], [1, 0, 0]])
    multi_hot = np.array([[1, 0, 1], [0, 0, 0]])
    assert ml.label_array(multi_hot).dtype == np.float32
    np.testing.assert_array_equal(ml.targets(multi_hot, 3), multi_hot)
    values = np.array([0.5, 2.0])
    assert reg.num_outputs(7) == 1 and cls.num_outputs(7) == ml.num_outputs(7) == 7
    np.testing.assert_array_equal(reg.predictions(np.array([[0.5], [2.0]])), values)
    assert (cls.class_weights, ml.class_weights, reg.class_weights) == (True, False, False)


def test_serving_outputs_per_type():
    import tensorflow as tf

    from tltk.heads import get_head

    scores = tf.constant([[0.2, 0.7, 0.1], [0.6, 0.3, 0.9]])
    out = get_head("multilabel").serving_outputs(scores, ["a", "b", "c"])
    assert out["top_class"].numpy().tolist() == [b"b", b"c"]
    np.testing.assert_allclose(out["top_score"], [0.7, 0.9])
    assert out["classes"].shape == (2, 3)
    rows = get_head("multilabel").prediction_rows({k: v.numpy() for k, v in out.items()}, 2)
    assert [[t["label"] for t in r["top"]] for r in rows] == [["b", "a"], ["c", "a"]]
    reg = get_head("regression").serving_outputs(tf.constant([[1.5], [-2.0]]), [])
    assert list(reg) == ["prediction"] and reg["prediction"].numpy().tolist() == [1.5, -2.0]
    with pytest.raises(ValueError, match="outputs 3 values per example, not 1"):
        get_head("regression").check_outputs(3, [])


def test_data_multi_label_builds_a_sigmoid_head_with_binary_cross_entropy():
    """data.multi_label resolves the run's head to multilabel: model, loss and evaluation agree
    (a classification head with multi-hot labels would train a softmax)."""
    from tltk import tasks
    from tltk.recipe import load_recipe

    recipe = load_recipe({"name": "t", "data": {"multi_label": True}})
    cfg = tasks.head_config(recipe)
    assert cfg.type == "multilabel" and recipe.head.type == "classification"
    assert isinstance(tasks.loss(recipe), keras.losses.BinaryCrossentropy)
    tm = build_model(tiny_backbone(), cfg, 3)
    assert tm.model.get_layer("head_scores").activation is keras.activations.sigmoid
