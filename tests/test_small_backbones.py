import warnings

import keras
import numpy as np
import pytest

from tltk.backbones import BackboneError, build_backbone, list_backbones, lookup
from tltk.recipe import BackboneConfig


@pytest.mark.parametrize("size", [28, 32, 64])
def test_resnet20_builds_with_groups_and_a_spatial_map(size):
    bb = build_backbone(BackboneConfig(name="resnet20", weights=None, image_size=size))
    assert list(bb.groups) == ["stem", "block1", "block2", "block3", "top"]
    assert [la.name for la in bb.groups["stem"]] == ["stem_conv"]
    for stage in ("block1", "block2", "block3"):
        assert all(la.name.startswith(f"{stage}_unit") for la in bb.groups[stage])
    assert [la.name for la in bb.groups["top"]] == ["top_bn", "top_relu", "top_pool"]
    # Three stages at strides 1, 2, 2: the last map is size/4, never 1x1 at these sizes.
    last_conv = bb.model.get_layer("block3_unit3_conv2")
    assert last_conv.output.shape[1] == -(-size // 4)
    out = bb.model(np.zeros((2, size, size, 3), "float32"))
    assert tuple(out.shape) == (2, 64)
    bns = [la for la in bb.model.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and all(la.momentum == 0.9 for la in bns)


def test_presets_have_the_published_sizes():
    rows = {
        r["name"]: r for r in list_backbones(with_params=False) if r["family"] == "small_resnet"
    }
    assert set(rows) == {"resnet8", "resnet8_wide", "resnet20", "resnet56", "wide_resnet_16_4"}
    assert all(r["input_size"] == 32 for r in rows.values())
    params = {name: lookup(name).build(None).model.count_params() for name in rows}
    # Published CIFAR counts (without the 10-class head): resnet20 ~0.27M, resnet56 ~0.85M,
    # WRN-16-4 ~2.7M.
    assert 0.26e6 < params["resnet20"] < 0.28e6
    assert 0.84e6 < params["resnet56"] < 0.87e6
    assert 2.7e6 < params["wide_resnet_16_4"] < 2.8e6


def test_resnet8_wide_downsamples_in_every_stage():
    bb = build_backbone(BackboneConfig(name="resnet8_wide", weights=None, image_size=28))
    assert list(bb.groups) == ["stem", "block1", "block2", "block3", "top"]
    # Strides 2, 2, 2 after a full-size stem: 28 -> 14 -> 7 -> 4, at twice resnet8's widths.
    sides = [bb.model.get_layer(f"block{i}_unit1_conv2").output.shape[1:] for i in (1, 2, 3)]
    assert sides == [(14, 14, 32), (7, 7, 64), (4, 4, 128)]
    assert bb.model.get_layer("stem_conv").output.shape[1:] == (28, 28, 16)
    assert lookup("resnet8_wide").total_stride == 8
    with pytest.raises(BackboneError, match="resnet8_wide needs at least 16 px"):
        build_backbone(BackboneConfig(name="resnet8_wide", weights=None, image_size=12))


def test_weights_round_trip_through_file_and_run_folder(tmp_path):
    cfg = BackboneConfig(name="resnet8", weights=None, image_size=28)
    first = build_backbone(cfg)
    run = tmp_path / "run"
    run.mkdir()
    first.model.save_weights(str(run / "backbone.weights.h5"))
    for weights in (run / "backbone.weights.h5", run):
        again = build_backbone(cfg.model_copy(update={"weights": str(weights)}))
        for a, b in zip(first.model.weights, again.model.weights, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_imagenet_weights_and_tiny_images_are_clear_errors():
    with pytest.raises(BackboneError, match="no ImageNet weights.*weights: none"):
        build_backbone(BackboneConfig(name="resnet20", weights="imagenet", image_size=32))
    with pytest.raises(BackboneError, match="at least 8 px"):
        build_backbone(BackboneConfig(name="resnet20", weights=None, image_size=4))


def test_trains_a_step_and_moves_the_loss():
    from tltk.model import build_model
    from tltk.recipe import HeadConfig

    keras.utils.set_random_seed(0)
    bb = build_backbone(BackboneConfig(name="resnet8", weights=None, image_size=28))
    task = build_model(bb, HeadConfig(dropout=0.0), 3)
    task.model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 28, 28, 3)).astype("float32")
    y = np.arange(8) % 3
    before = [np.asarray(w).copy() for w in bb.model.trainable_weights]
    losses = [task.model.train_on_batch(x, y) for _ in range(5)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    after = bb.model.trainable_weights
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after, strict=True))


def test_collapse_warning_fires_for_imagenet_family_at_32px_only():
    with pytest.warns(UserWarning, match="mobilenet_v3_small.*1x1.*resnet20"):
        build_backbone(BackboneConfig(name="mobilenet_v3_small", weights=None, image_size=32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_backbone(BackboneConfig(name="mobilenet_v3_small", weights=None, image_size=96))
        build_backbone(BackboneConfig(name="resnet20", weights=None, image_size=32))


def test_an_unregistered_arch_builds_like_a_preset():
    from tltk.backbones.small_resnet import PRESETS, SmallResNetArch, build_arch

    arch = SmallResNetArch(blocks_per_stage=2, widths=(24, 48, 96), stem_width=8, strides=(2, 2, 2))
    bb = build_arch(arch, "resnet14_w24", 28)
    assert list(bb.groups) == ["stem", "block1", "block2", "block3", "top"]
    assert bb.model.get_layer("stem_conv").output.shape[1:] == (28, 28, 8)
    sides = [bb.model.get_layer(f"block{i}_unit2_conv2").output.shape[1:] for i in (1, 2, 3)]
    assert sides == [(14, 14, 24), (7, 7, 48), (4, 4, 96)]
    assert bb.info["family"] == "small_resnet"
    # A preset's arch through build_arch is the registered preset, weight for weight.
    preset = build_backbone(BackboneConfig(name="resnet8_wide", weights=None, image_size=28))
    again = build_arch(PRESETS["resnet8_wide"], "resnet8_wide", 28)
    shapes = [tuple(w.shape) for w in preset.model.weights]
    assert shapes == [tuple(w.shape) for w in again.model.weights]
    with pytest.raises(BackboneError, match="resnet14_w24 needs at least 16 px"):
        build_arch(arch, "resnet14_w24", 12)
