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
    assert set(rows) == {"resnet8", "resnet20", "resnet56", "wide_resnet_16_4"}
    assert all(r["input_size"] == 32 for r in rows.values())
    params = {name: lookup(name).build(None).model.count_params() for name in rows}
    # Published CIFAR counts (without the 10-class head): resnet20 ~0.27M, resnet56 ~0.85M,
    # WRN-16-4 ~2.7M.
    assert 0.26e6 < params["resnet20"] < 0.28e6
    assert 0.84e6 < params["resnet56"] < 0.87e6
    assert 2.7e6 < params["wide_resnet_16_4"] < 2.8e6


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
