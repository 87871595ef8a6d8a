import numpy as np
import pytest

from tltk.backbones import (
    BackboneError,
    PixelNormalization,
    build_backbone,
    cut_after,
    list_backbones,
)
from tltk.backbones.base import lookup, registered
from tltk.recipe import BackboneConfig


def test_registry_covers_the_required_families():
    names = set(registered("image"))
    assert {"mobilenet_v3_small", "mobilenet_v3_large", "resnet50_v2", "convnext_tiny"} <= names
    assert {f"efficientnet_v2_b{i}" for i in range(4)} | {"densenet121"} <= names
    assert set(registered("text")) == {"text_rnn"}


def test_specs_name_their_normalisation_and_pretrained_weights():
    """What each family wants of its pixels is a field of its spec, and the built backbone's
    normalisation layers are made from it (tests/backbone_contract.py checks the mapping)."""
    from tltk.backbones.applications import IMAGENET_TORCH, TF_SCALING

    assert lookup("mobilenet_v3_small").normalization is None  # rescales inside the network
    assert lookup("resnet50_v2").normalization == TF_SCALING
    assert lookup("densenet121").normalization == IMAGENET_TORCH
    assert lookup("resnet20").normalization == TF_SCALING and lookup("resnet20").pretrained == ()
    assert lookup("efficientnet_lite0").normalization == PixelNormalization(mean=127, std=128)
    assert lookup("resnet20").total_stride == 4 and lookup("densenet121").total_stride == 32
    assert not hasattr(lookup("text_rnn"), "default_size")  # a text backbone has no image size


def test_weights_file_round_trip(tmp_path):
    cfg = BackboneConfig(name="mobilenet_v3_small", weights=None, image_size=32)
    first = build_backbone(cfg)
    path = tmp_path / "bb.weights.h5"
    first.model.save_weights(str(path))
    second = build_backbone(cfg.model_copy(update={"weights": str(path)}))
    for a, b in zip(first.model.weights, second.model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A run folder holding backbone.weights.h5 works too.
    (tmp_path / "run").mkdir()
    path.rename(tmp_path / "run" / "backbone.weights.h5")
    third = build_backbone(cfg.model_copy(update={"weights": str(tmp_path / "run")}))
    np.testing.assert_array_equal(
        np.asarray(third.model.weights[0]), np.asarray(first.model.weights[0])
    )


def test_missing_weights_file_is_a_clear_error(tmp_path):
    cfg = BackboneConfig(
        name="mobilenet_v3_small", weights=str(tmp_path / "nope.h5"), image_size=32
    )
    with pytest.raises(BackboneError, match="nope.h5.*weights file"):
        build_backbone(cfg)


def test_imagenet_offline_fails_fast_and_names_the_fix(monkeypatch):
    import time

    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.mobilenet_v3.file_utils.get_file", offline)
    start = time.time()
    with pytest.raises(
        BackboneError, match=r"mobilenet_v3_small.*backbone.weights: /path/to/file.h5"
    ):
        build_backbone(BackboneConfig(name="mobilenet_v3_small", weights="imagenet", image_size=32))
    assert time.time() - start < 60  # not a download's retries (minutes); no speed target


def test_unknown_name_suggests():
    with pytest.raises(BackboneError, match="mobilenet_v3_small"):
        build_backbone(BackboneConfig(name="mobilenet_v3_smal", weights=None))


def test_bn_momentum_override():
    import keras

    bb = build_backbone(
        BackboneConfig(name="mobilenet_v3_small", weights=None, image_size=32, bn_momentum=0.9)
    )
    bns = [la for la in bb.model.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and all(la.momentum == 0.9 for la in bns)


def test_features_from_ends_the_backbone_after_a_group():
    import keras

    cfg = BackboneConfig(name="efficientnet_lite0", weights=None, image_size=64)
    whole = build_backbone(cfg)
    cut = build_backbone(cfg.model_copy(update={"features_from": "block5"}))
    names = list(whole.groups)
    assert list(cut.groups) == names[: names.index("block5") + 1]
    assert cut.model.output.shape == (None, 4, 4, 112)  # stride 16 at 64 px, block5's width
    assert cut.model.count_params() < whole.model.count_params() / 2
    # The whole backbone's own layers, so its weights (pretrained or not) carry over.
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    shared = cut_after(whole, "block5")
    assert shared.groups["block5"][-1] is whole.groups["block5"][-1]
    inner = keras.Model(whole.model.input, whole.groups["block5"][-1].output)
    np.testing.assert_allclose(shared.model.predict(x, verbose=0), inner.predict(x, verbose=0))
    assert cut_after(whole, "top") is whole  # the last group: the whole backbone
    with pytest.raises(BackboneError, match="'block9' is not a group of efficientnet_lite0.*stem"):
        cut_after(whole, "block9")
    text = BackboneConfig(name="text_rnn", weights=None, features_from="block5")
    with pytest.raises(BackboneError, match="features_from is for image backbones"):
        build_backbone(text, modality="text")


def test_list_backbones_reports_family_modality_and_input_size():
    rows = {r["name"]: r for r in list_backbones(with_params=False)}
    assert rows["efficientnet_v2_b3"]["input_size"] == 300
    assert rows["mobilenet_v3_small"]["family"] == "mobilenet_v3"
    assert rows["text_rnn"] == {"name": "text_rnn", "family": "text", "modality": "text"}


def test_an_image_recipe_naming_a_text_backbone_is_a_clear_error():
    with pytest.raises(BackboneError, match="'text_rnn' is a text backbone; set `modality: text`"):
        build_backbone(BackboneConfig(name="text_rnn", weights=None))


def test_keras_hub_local_preset_folder(tmp_path):
    import keras_hub

    bb = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    bb.save_to_preset(str(tmp_path))
    keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255.0).save_to_preset(
        str(tmp_path)
    )
    built = build_backbone(BackboneConfig(name=str(tmp_path), weights="preset", image_size=32))
    assert list(built.groups)[0] == "stem" and "block1" in built.groups and "block2" in built.groups
    np.testing.assert_array_equal(np.asarray(built.model.weights[0]), np.asarray(bb.weights[0]))
    assert built.image_size == 32 and built.normalization


def test_remote_preset_offline_fails_fast(monkeypatch):
    import time

    from tltk import net

    monkeypatch.setattr(net, "reachable", lambda host, port=443, timeout=3.0: False)
    start = time.time()
    with pytest.raises(ConnectionError, match="hf://someone/some-vit.*local folder"):
        build_backbone(BackboneConfig(name="hf://someone/some-vit", weights="imagenet"))
    assert time.time() - start < 60  # not a DNS hang (minutes); no speed target
