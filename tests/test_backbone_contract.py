"""The backbone contract (tests/backbone_contract.py) over every registered backbone, image
and text, and a KerasHub text backbone built from a config.

A new registered name gets checked here by adding its parameter count (weights none) to
`GOLDEN_PARAMS`; the test that compares the table with the registry says so.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from backbone_contract import check_backbone, check_normalization
from text_helpers import make_tiny_bert, texts

from tltk.backbones import lookup, registered
from tltk.backbones.text import build_text_backbone, load_text_backbone, save_text_assets
from tltk.recipe import BackboneConfig

GOLDEN_PARAMS = {
    # Image backbones, without their classifier tops (the same at any input size).
    "convnext_tiny": 27_820_128,
    "densenet121": 7_037_504,
    "efficientnet_lite0": 3_413_024,
    "efficientnet_v2_b0": 5_919_312,
    "efficientnet_v2_b1": 6_931_124,
    "efficientnet_v2_b2": 8_769_374,
    "efficientnet_v2_b3": 12_930_622,
    "mobilenet_v3_large": 2_996_352,
    "mobilenet_v3_small": 939_120,
    "resnet20": 273_008,
    "resnet50_v2": 23_564_800,
    "resnet56": 858_992,
    "resnet8": 77_680,
    "wide_resnet_16_4": 2_749_936,
    # text_rnn with TEXT_RNN_KWARGS on the vocabulary of `texts(4)`.
    "text_rnn": 664,
}
SLOW = {"convnext_tiny", "densenet121", "efficientnet_v2_b1", "efficientnet_v2_b2"}
SLOW |= {"efficientnet_v2_b3", "resnet50_v2"}  # 5-15 s each to build twice and round-trip
TEXT_RNN_KWARGS = {"units": 4, "embedding_dim": 8}
TINY_BERT_PARAMS = 21_664  # text_helpers.make_tiny_bert: 2 layers, 32 wide
SIZE = 32


def image_names() -> list:
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
        for name in sorted(registered("image"))
    ]


def test_every_registered_backbone_has_a_golden_parameter_count():
    assert set(GOLDEN_PARAMS) == set(registered()), "add the new backbone to GOLDEN_PARAMS"


@pytest.mark.parametrize("name", image_names())
def test_image_backbone_contract(name, tmp_path):
    spec = lookup(name)
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # at 32 px the ImageNet families warn of a 1x1 map
        backbone = spec.build(None, SIZE)
        blocks = [g for g in backbone.groups if g not in ("stem", "top")]
        assert list(backbone.groups) == ["stem", *blocks, "top"]
        assert blocks == [f"block{i}" for i in range(1, len(blocks) + 1)]
        assert backbone.image_size == SIZE
        check_normalization(backbone, spec.normalization)
        pixels = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
        check_backbone(
            backbone,
            params=GOLDEN_PARAMS[name],
            example_inputs=pixels,
            restore=lambda bb, folder: lookup(bb.name).build(None, bb.image_size),
            tmp_path=tmp_path,
        )


def restore_text(backbone, folder):
    """As a finished run does: its saved assets -> a backbone with random weights."""
    save_text_assets(backbone, folder)
    return load_text_backbone(folder)


def test_text_rnn_contract(tmp_path):
    train = [t for t, _ in texts(4)]
    keras.utils.set_random_seed(0)
    backbone = lookup("text_rnn").build(sequence_length=6, train_texts=train, **TEXT_RNN_KWARGS)
    assert list(backbone.groups) == ["embeddings", "rnn"]
    check_backbone(
        backbone,
        params=GOLDEN_PARAMS["text_rnn"],
        example_inputs=backbone.preprocessor(tf.constant(train[:3])),
        restore=restore_text,
        tmp_path=tmp_path,
    )


def test_keras_hub_text_backbone_contract(tmp_path):
    folder = make_tiny_bert(tmp_path / "tiny_bert")
    (tmp_path / "run").mkdir()
    cfg = BackboneConfig(name=str(folder), weights=None, sequence_length=8)
    keras.utils.set_random_seed(0)
    backbone = build_text_backbone(cfg)
    assert list(backbone.groups) == ["embeddings", "layer_0", "layer_1", "pooler"]
    check_backbone(
        backbone,
        params=TINY_BERT_PARAMS,
        example_inputs=backbone.preprocessor(tf.constant(["play chess", "plot genome data"])),
        restore=restore_text,
        tmp_path=tmp_path / "run",
    )
