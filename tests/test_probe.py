"""The linear probe: scikit-learn's fitted probabilities reproduced by the Keras scores layer;
the L2 strength chosen on val; the head start of a run (fitted once, resumed, recorded)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers import make_image_folder, tiny_recipe

from tltk.probe import C_GRID, fit_probe

TOL = 1e-5


def _features(n: int, k: int, width: int = 6, seed: int = 0):  # one distribution per seed
    """Features [n, width] (not standardised: offsets and scales differ) and class ids."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % k
    centres = rng.normal(0, 1.5, (k, width))
    x = centres[ids] + rng.normal(0, 1, (n, width))
    return (x * rng.uniform(0.1, 20, width) + rng.uniform(-50, 50, width)).astype(np.float32), ids


def _keras_scores(probe, activation, x) -> np.ndarray:
    """The probe loaded into a float32 Dense like the task model's scores layer."""
    layer = keras.layers.Dense(probe.kernel.shape[1], activation=activation, dtype="float32")
    layer.build((None, probe.kernel.shape[0]))
    layer.kernel.assign(probe.kernel)
    layer.bias.assign(probe.bias)
    return keras.ops.convert_to_numpy(layer(x))


@pytest.mark.parametrize("k", [2, 4])
def test_softmax_probe_reproduces_sklearn_probabilities(k):
    x, ids = _features(180, k)
    x, ids, val_x, val_ids = x[:120], ids[:120], x[120:], ids[120:]
    onehot = np.eye(k, dtype=np.float32)
    probe = fit_probe("softmax", (x, onehot[ids]), (val_x, onehot[val_ids]))
    expected = probe.sklearn_scores(val_x)
    assert expected.shape == (60, k)
    np.testing.assert_allclose(_keras_scores(probe, "softmax", val_x), expected, atol=TOL)
    np.testing.assert_allclose(probe.scores(val_x, "softmax"), expected, atol=TOL)
    c = float(probe.strength.split()[1])
    assert c in C_GRID
    # The choice is the grid's lowest val loss: its recorded loss is the chosen fit's.
    loss = -np.mean(np.log(expected[np.arange(60), val_ids]))
    assert probe.val["loss"] == pytest.approx(loss, abs=TOL)
    assert probe.val["accuracy"] == np.mean(expected.argmax(1) == val_ids) > 0.6


def test_class_weights_shift_the_probe_and_no_val_means_c_1():
    x, ids = _features(90, 3)
    onehot = np.eye(3, dtype=np.float32)[ids]
    plain = fit_probe("softmax", (x, onehot), None)
    assert plain.strength.startswith("C 1 (no validation split") and plain.val == {}
    weights = {0: 5.0, 1: 1.0, 2: 1.0}
    weighted = fit_probe("softmax", (x, onehot), None, class_weight=weights)
    assert weighted.scores(x, "softmax")[:, 0].mean() > plain.scores(x, "softmax")[:, 0].mean()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(x)
    fresh = LogisticRegression(C=1.0, class_weight=weights, max_iter=1000).fit(scaled, ids)
    np.testing.assert_allclose(
        weighted.scores(x, "softmax"), fresh.predict_proba(scaled), atol=1e-3
    )  # the same problem as scikit-learn's own class-weighted fit, to its solver's tolerance


def test_a_class_absent_from_train_gets_almost_no_probability():
    x, ids = _features(60, 3)
    ids[ids == 2] = 0  # class 2 of 3 never seen in training
    probe = fit_probe("softmax", (x, np.eye(3, dtype=np.float32)[ids]), None)
    scores = _keras_scores(probe, "softmax", x)
    np.testing.assert_allclose(scores, probe.sklearn_scores(x), atol=1e-4)
    assert scores[:, 2].max() < 1e-3


def test_one_vs_rest_probe_for_multi_label():
    x, ids = _features(210, 3)
    labels = np.eye(4, dtype=np.float32)[ids]  # label 3: never on, a constant output
    labels[::3, 1] = 1.0  # several labels per example
    x, labels, val_x, val_labels = x[:150], labels[:150], x[150:], labels[150:]
    probe = fit_probe("sigmoid", (x, labels), (val_x, val_labels))
    expected = probe.sklearn_scores(val_x)
    assert expected.shape == (60, 4) and expected[:, 3].max() < 1e-3
    np.testing.assert_allclose(_keras_scores(probe, "sigmoid", val_x), expected, atol=TOL)


def test_ridge_probe_for_regression():
    x, _ = _features(100, 2)
    rng = np.random.default_rng(3)
    y = (x @ rng.normal(0, 0.1, x.shape[1]) + 3.0).astype(np.float32)
    probe = fit_probe(None, (x[:70], y[:70]), (x[70:], y[70:]))
    assert probe.strength.startswith("alpha ")
    np.testing.assert_allclose(
        _keras_scores(probe, None, x[70:]), probe.sklearn_scores(x[70:]), atol=1e-4
    )
    assert probe.val["mae"] < 0.1 * np.std(y)  # nearly linear data: a close fit


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="no linear probe.*relu"):
        fit_probe("relu", (np.zeros((4, 2)), np.zeros(4)), None)


@pytest.mark.slow
def test_a_run_starts_its_head_from_the_probe_once_and_resumes_it(tmp_path, monkeypatch, capsys):
    """The run's model scores val exactly as the probe did (the probe is what the Keras head
    holds); a run stopped after the probe reloads it instead of fitting again, and ends as the
    uninterrupted run."""
    import tltk
    from tltk import fitting, tasks
    from tltk.backbones import build_backbone
    from tltk.recipe import BackboneConfig, load_recipe

    images = make_image_folder(tmp_path / "images", {"a": 12, "b": 12, "c": 12}, size=16)
    keras.utils.set_random_seed(1)
    start = build_backbone(BackboneConfig(name="resnet8", weights=None, image_size=16))
    start.model.save_weights(str(tmp_path / "start.weights.h5"))
    recipe = tiny_recipe(
        tmp_path, images, head={"dropout": 0.5}, train={"verbose": 0},
        export={"enabled": False}, evaluate={"plots": False},
    )  # fmt: skip
    recipe["backbone"] = {"name": "resnet8", "weights": str(tmp_path / "start.weights.h5"),
                          "image_size": 16}  # fmt: skip
    recipe["phases"] = [{"name": "head", "train": "head", "epochs": 2, "learning_rate": 0.01}]
    reference = tltk.train(recipe)
    out = capsys.readouterr().out
    assert "Head start: probe (a pretrained backbone and a linear head)" in out
    n_train = len(reference.data.splits["train"])
    assert f"Linear probe on {n_train} cached training features: C " in out
    state = json.loads((reference.run_dir / "state.json").read_text())
    assert state["probe"]["strength"].startswith("C ")
    # The probe's weights, in the Keras model, score val exactly as the probe did.
    model = reference.model
    model.load_weights(str(reference.run_dir / "weights" / "probe.weights.h5"))
    resolved = load_recipe(reference.run_dir / "recipe.yaml")
    ds = tasks.pipeline(resolved, reference.data, "val", reference.task_model, 8, training=False)
    scores = model.predict(ds, verbose=0)
    targets = np.eye(3)[reference.data.splits["val"].labels]
    loss = -np.mean(np.sum(targets * np.log(np.clip(scores, 1e-7, 1)), axis=1))
    assert loss == pytest.approx(state["probe"]["val_loss"], abs=TOL)
    model.load_weights(str(reference.run_dir / "model.weights.h5"))

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C would: after the probe, in the first phase

    real_fit = fitting._fit
    monkeypatch.setattr(fitting, "_fit", stop)
    with pytest.raises(KeyboardInterrupt):
        tltk.train(recipe, resume=False)
    assert "Linear probe on" in capsys.readouterr().out
    monkeypatch.setattr(fitting, "_fit", real_fit)
    resumed = tltk.train(recipe)
    out = capsys.readouterr().out
    assert "the linear probe fitted before the restart" in out and "Linear probe on" not in out
    assert resumed.run_dir != reference.run_dir
    for a, b in zip(resumed.model.weights, reference.model.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL, err_msg=a.path)
