"""Cached backbone features: a head phase on cached features trains exactly as the uncached
phase does (same batches, same validation, same weights), for images and texts, in memory
and on disk; when a phase is cached."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_image_folder, tiny_recipe
from text_helpers import make_tiny_bert, texts, write_csv

import tltk
from tltk import features

HEAD_PHASE = {"name": "head", "train": "head", "epochs": 3, "learning_rate": 0.05}
TOL = 1e-5


def _image_recipe(tmp_path, images, cache: str, **train) -> dict:
    recipe = tiny_recipe(
        tmp_path, images, name=f"images_{cache}", head={"dropout": 0.0},
        train={"feature_cache": cache, "verbose": 2, "callbacks": {"tensorboard": False},
               **train},
        export={"enabled": False}, evaluate={"plots": False},
    )  # fmt: skip
    recipe["backbone"] = {"name": "resnet8", "weights": "none", "image_size": 16}
    recipe["phases"] = [HEAD_PHASE]
    return recipe


def _text_recipe(tmp_path, bert, cache: str) -> dict:
    data = write_csv(tmp_path / "texts.csv", texts(10))
    return {
        "name": f"texts_{cache}",
        "modality": "text",
        "data": {"source": "text", "path": str(data), "val_fraction": 0.2, "test_fraction": 0.2},
        "backbone": {"name": str(bert), "weights": None, "sequence_length": 12},
        "head": {"dropout": 0.0},
        "phases": [HEAD_PHASE],
        "train": {
            "batch_size": 4,
            "feature_cache": cache,
            "runs_dir": str(tmp_path / "runs"),
            "verbose": 2,
            "callbacks": {"tensorboard": False},
        },
        "evaluate": {"plots": False},
        "export": {"enabled": False},
    }


def _same_training(cached, uncached) -> None:
    """Same epoch logs (train and val), same head and backbone weights, same test metrics."""
    assert cached.history.keys() == uncached.history.keys()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(cached.history[key], uncached.history[key], atol=TOL)
    assert len(cached.history["loss"]) == HEAD_PHASE["epochs"]
    for a, b in zip(cached.model.weights, uncached.model.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL, err_msg=a.path)
    assert cached.metrics["loss"] == pytest.approx(uncached.metrics["loss"], abs=TOL)
    assert cached.metrics["accuracy"] == uncached.metrics["accuracy"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    return make_image_folder(root / "images", {"a": 14, "b": 14, "c": 14}, size=16)


@pytest.mark.slow
def test_cached_image_head_phase_equals_uncached_in_memory_and_on_disk(
    tmp_path, images, monkeypatch, capsys
):
    uncached = tltk.train(_image_recipe(tmp_path, images, "off"))
    assert "on cached features" not in capsys.readouterr().out
    cached = tltk.train(_image_recipe(tmp_path, images, "auto"))
    out = capsys.readouterr().out
    assert "on cached features: the backbone is frozen and nothing is augmented" in out
    n_train = len(cached.data.splits["train"])
    assert f"Features of 'train': {n_train} x 64 (0.0 MiB, in memory)" in out
    _same_training(cached, uncached)
    # Over the memory budget, the features go to RUN/features as memmaps, gone after the run.
    monkeypatch.setattr(features, "FEATURE_CACHE_BYTES", 1)
    on_disk = tltk.train(_image_recipe(tmp_path, images, "on"))
    assert f"on disk in {on_disk.run_dir / 'features'}" in capsys.readouterr().out
    assert not (on_disk.run_dir / "features").exists()
    _same_training(on_disk, uncached)


@pytest.mark.slow
def test_cached_text_head_phase_equals_uncached(tmp_path):
    """A KerasHub BERT (dropout 0: a frozen backbone's dropout is off on cached features) of
    one layer: what is compared is the head phase on top of whatever the backbone computes."""
    bert = make_tiny_bert(tmp_path / "bert", num_layers=1, dropout=0.0)
    uncached = tltk.train(_text_recipe(tmp_path, bert, "off"))
    cached = tltk.train(_text_recipe(tmp_path, bert, "auto"))
    _same_training(cached, uncached)


def test_which_phases_are_cached(tmp_path, images, monkeypatch):
    from tltk import plan, tasks
    from tltk.recipe import load_recipe

    def decision(train_groups, **recipe_keys):
        raw = _image_recipe(tmp_path, images, recipe_keys.pop("cache", "auto"))
        raw.update(recipe_keys)
        if raw["phases"] is None:
            del raw["phases"]
        recipe = load_recipe(raw)
        data = tasks.load_data(recipe)
        task_model = tasks.build_task_model(recipe, data)
        return features.cache_decision(recipe, task_model, train_groups)

    assert decision([]) == "the backbone is frozen and nothing is augmented"
    assert decision(["top"]) is None  # the backbone trains: its features change
    assert decision([], cache="off") is None
    flips = {"policy": "light"}
    assert decision([], augment=flips) is None  # augmented images are not cached by default
    assert "train.feature_cache: on" in decision([], augment=flips, cache="on")
    # The default plan's own augmentation (augment.policy: auto) is for the fine-tune: a head
    # phase before it (head.init: random) still trains on cached, un-augmented features.
    monkeypatch.setattr(plan, "starts_pretrained", lambda recipe: True)
    assert "augment.policy: auto" in decision([], phases=None)
    assert decision([], phases=None, augment={"policy": "shift"}) is None


def test_split_at_pooled_shares_the_task_models_layers():
    import keras

    from tltk.backbones import build_backbone
    from tltk.model import build_model
    from tltk.recipe import BackboneConfig, HeadConfig

    keras.utils.set_random_seed(0)
    backbone = build_backbone(BackboneConfig(name="resnet8", weights=None, image_size=16))
    task_model = build_model(backbone, HeadConfig(dropout=0.3, hidden_units=8), 3)
    halves = features.split_at_pooled(task_model.model)
    head_layers = {la.name: la for la in halves.head.layers[1:]}
    assert set(head_layers) == {"head_dropout_hidden", "head_hidden", "head_dropout", "head_scores"}
    assert all(task_model.model.get_layer(n) is la for n, la in head_layers.items())
    x = np.random.default_rng(0).uniform(0, 255, (5, 16, 16, 3)).astype("float32")
    pooled = halves.extractor.predict(x, verbose=0)
    assert pooled.shape == (5, 64)
    np.testing.assert_allclose(
        halves.head.predict(pooled, verbose=0), task_model.model.predict(x, verbose=0), atol=1e-6
    )
