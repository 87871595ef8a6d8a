import keras
import numpy as np
import pytest

from tltk import phases as ph
from tltk.backbones import build_backbone
from tltk.model import build_model
from tltk.recipe import BackboneConfig, HeadConfig, PhaseConfig


@pytest.fixture()
def task_model():
    keras.utils.set_random_seed(0)
    bb = build_backbone(BackboneConfig(name="mobilenet_v3_small", weights=None, image_size=32))
    return build_model(bb, HeadConfig(dropout=0.0), 3)


def data(n=16):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % 3, 3)
    return x, y


def snapshot(layers):
    return {w.path: np.array(keras.ops.convert_to_numpy(w)) for la in layers for w in la.weights}


def run_phase(tm, phase, epochs=1):
    train = ph.trainable_groups(phase.train, tm.backbone_groups)
    ph.set_trainable(tm.groups, train, phase.batchnorm)
    opt = ph.make_optimizer(
        phase, steps_per_epoch=2, multipliers=ph.lr_multipliers(tm.groups, train, phase)
    )
    tm.model.compile(opt, "categorical_crossentropy")
    x, y = data()
    tm.model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
    return train


def changed(before, after):
    return {k for k in before if not np.array_equal(before[k], after[k])}


def test_trainable_groups_resolution():
    groups = ["stem", "block1", "block2", "top"]
    assert ph.trainable_groups("head", groups) == []
    assert ph.trainable_groups("all", groups) == groups
    assert ph.trainable_groups("top:2", groups) == ["block2", "top"]
    assert ph.trainable_groups(["top", "stem"], groups) == ["stem", "top"]
    with pytest.raises(ph.PhaseError, match="block3.*'block2'"):
        ph.trainable_groups(["block3"], groups)
    with pytest.raises(ph.PhaseError, match="top:9"):
        ph.trainable_groups("top:9", groups)


def test_head_phase_changes_only_the_head(task_model):
    tm = task_model
    backbone_layers = [la for g in tm.backbone_groups for la in tm.groups[g]]
    before_bb, before_head = snapshot(backbone_layers), snapshot(tm.groups["head"])
    run_phase(tm, PhaseConfig(train="head", learning_rate=1e-2))
    assert not changed(before_bb, snapshot(backbone_layers))  # BN moving stats included
    assert changed(before_head, snapshot(tm.groups["head"]))
    assert any("moving_mean" in k for k in before_bb)


def test_unfrozen_groups_change_frozen_ones_and_bn_stats_do_not(task_model):
    tm = task_model
    top = tm.groups["top"] + tm.groups["block4"]
    rest = [la for g in tm.backbone_groups[:-2] for la in tm.groups[g]]
    before_top, before_rest = snapshot(top), snapshot(rest)
    run_phase(tm, PhaseConfig(train="top:2", learning_rate=1e-2))
    diff = changed(before_top, snapshot(top))
    assert any("kernel" in k for k in diff)
    assert not any("moving_" in k or "gamma" in k or "beta" in k for k in diff)  # BN frozen
    assert not changed(before_rest, snapshot(rest))


def test_batchnorm_train_mode_updates_statistics(task_model):
    tm = task_model
    top = tm.groups["top"]
    before = snapshot(top)
    run_phase(tm, PhaseConfig(train="top:1", learning_rate=1e-2, batchnorm="train"))
    assert any("moving_mean" in k for k in changed(before, snapshot(top)))


def test_lr_multiplier_scales_the_update_exactly():
    # Two identical Dense layers, one at LR x1 and one at x0.25: with plain SGD the update of
    # the second is exactly a quarter of the first.
    keras.utils.set_random_seed(1)
    inp = keras.Input((4,))
    a = keras.layers.Dense(1, use_bias=False, name="a")
    b = keras.layers.Dense(1, use_bias=False, name="b")
    model = keras.Model(inp, keras.layers.Add()([a(inp), b(inp)]))
    b.set_weights(a.get_weights())
    groups = {"stem": [b], "head": [a]}
    phase = PhaseConfig(
        train="all", optimizer="sgd", momentum=0.0, learning_rate=0.1, lr_multipliers={"stem": 0.25}
    )
    mult = ph.lr_multipliers(groups, ["stem"], phase)
    assert mult == {b.kernel.path: 0.25}
    w0 = a.get_weights()[0].copy()
    model.compile(ph.make_optimizer(phase, steps_per_epoch=1, multipliers=mult), "mse")
    model.fit(
        np.ones((2, 4), "float32"), np.zeros((2, 1), "float32"), epochs=1, batch_size=2, verbose=0
    )
    da, db = a.get_weights()[0] - w0, b.get_weights()[0] - w0
    np.testing.assert_allclose(db, 0.25 * da, rtol=1e-5)
    assert np.abs(da).max() > 0


def test_layerwise_decay_orders_factors(task_model):
    tm = task_model
    phase = PhaseConfig(train="top:3", layerwise_decay=0.5)
    train = ph.trainable_groups(phase.train, tm.backbone_groups)
    mult = ph.lr_multipliers(tm.groups, train, phase)
    by_group = {
        g: {mult.get(w.path, 1.0) for la in tm.groups[g] for w in la.trainable_weights}
        for g in train
    }
    assert by_group == {"block3": {0.25}, "block4": {0.5}, "top": {1.0}}


def test_cosine_warmup_schedule():
    opt = ph.make_optimizer(
        PhaseConfig(learning_rate=1e-3, schedule="cosine", warmup_epochs=1, epochs=4),
        steps_per_epoch=10,
    )

    def lr_at(step: int) -> float:
        opt.iterations.assign(step)
        return float(opt.learning_rate)

    assert lr_at(0) == pytest.approx(0.0)
    assert lr_at(5) == pytest.approx(0.5e-3, rel=1e-3)  # linear warm-up
    assert lr_at(10) == pytest.approx(1e-3, rel=1e-3)
    assert lr_at(40) < 1e-4


def test_default_phases_head_then_top():
    phases = ph.default_phases(6)
    assert [p.train for p in phases] == ["head", "top:2"]
    assert phases[1].learning_rate < phases[0].learning_rate
