"""The learning-rate range test: the callback and suggestion on a toy problem, `tltk lr-find`
(CLI and Python), and `learning_rate: auto` in a phase (recorded, reused on resume)."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from helpers import make_image_folder, tiny_recipe

import tltk
from tltk import lr_auto
from tltk.cli import main
from tltk.lr_finder import LRRangeTest, default_steps, range_test, suggest_learning_rate
from tltk.phases import PhaseError, make_optimizer
from tltk.recipe import PhaseConfig, RecipeError, load_recipe


def blobs(n: int = 512, seed: int = 0):
    """Two Gaussian blobs 6 standard deviations apart in 8-d: linearly separable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8)).astype("float32") + 3.0 * (2 * y[:, None] - 1)
    return x, keras.utils.to_categorical(y, 2)


def softmax_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-7), loss="categorical_crossentropy")
    return model


def test_range_test_suggests_a_sane_rate_for_adam_and_puts_the_weights_back():
    x, y = blobs()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32)
    model = softmax_model()
    before = [w.copy() for w in model.get_weights()]
    result = range_test(model, ds, steps=100)
    assert 1e-4 <= result.suggestion <= 1.0
    assert result.suggestion < result.minimum  # the middle of the fall, before its bottom
    assert len(result.losses) == len(result.learning_rates) == len(result.smoothed) <= 100
    # Rates rise exponentially from 1e-7; the loss falls from chance (ln 2) well below it.
    lrs = np.array(result.learning_rates)
    assert lrs[0] == pytest.approx(1e-7) and np.allclose(lrs[1:] / lrs[:-1], lrs[1] / lrs[0])
    assert result.losses[0] > 0.3 and min(result.smoothed) < 0.5 * result.smoothed[0]
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_recorded_loss_is_each_batchs_own_not_the_running_mean():
    # Batches of the same points, labels right and flipped in turn, at a rate too small to learn
    # anything: the recorded losses alternate; the epoch's running mean would settle between.
    x, y = blobs(64)
    wrong = 1.0 - y
    batches = [(x[:32], y[:32]), (x[:32], wrong[:32])]
    ds = tf.data.Dataset.from_tensor_slices(
        (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    )
    model = softmax_model()
    test = LRRangeTest(start=1e-12, end=1e-11, steps=6, diverge=1e9)
    model.fit(
        ds.repeat().batch(32),
        epochs=1,
        steps_per_epoch=6,
        callbacks=[test],
        shuffle=False,
        verbose=0,
    )
    first, second = test.losses[0::2], test.losses[1::2]
    assert np.allclose(first, first[0], rtol=1e-4) and np.allclose(second, second[0], rtol=1e-4)
    assert abs(second[0] - first[0]) > 0.5


def test_the_test_stops_when_the_loss_explodes():
    # Least squares with plain SGD diverges once the rate passes 2 / (largest curvature).
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    y = x @ np.arange(1, 9, dtype="float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e-7), loss="mse")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32)
    test = LRRangeTest(start=1e-4, end=1e2, steps=100)
    model.fit(ds, epochs=1, steps_per_epoch=100, callbacks=[test], shuffle=False, verbose=0)
    assert test.stopped_early and len(test.losses) < 100
    best = min(s for s in test.smoothed if math.isfinite(s))
    assert not math.isfinite(test.smoothed[-1]) or test.smoothed[-1] > 4 * best
    assert 0.05 < test.learning_rates[-1] < 10  # SGD on standard normal inputs: about 2 / 9


def test_suggestion_is_in_the_middle_of_the_fall_not_at_its_bottom():
    lrs = list(np.logspace(-6, 0, 61))
    log = np.log10(lrs)
    loss = list(2.0 - 1.5 / (1 + np.exp(-3 * (log + 3))) + 0.5 * np.maximum(0, log + 1) ** 2)
    suggestion, minimum, steepest = suggest_learning_rate(lrs, loss)
    assert minimum == pytest.approx(lrs[int(np.argmin(loss))])
    assert steepest == pytest.approx(1e-3, rel=0.3)  # the sigmoid's centre
    assert 1e-4 < suggestion < minimum / 3


def test_a_noise_dip_on_a_flat_curve_does_not_make_the_suggestion():
    # A fine-tuning phase: flat and noisy, its lowest point a dip at the third batch, rising
    # from 1e-2 on. A tenth of the minimum would say 1e-7; the suggestion stays before the rise.
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 0, 50)
    loss = 1.0 + 0.05 * rng.standard_normal(50) + 3 * np.maximum(0, np.log10(lrs) + 2)
    loss[2] = 0.7
    suggestion, minimum, _ = suggest_learning_rate(list(lrs), list(loss))
    assert minimum == lrs[2]
    assert 1e-6 < suggestion < 1e-3
    assert default_steps(4) == 50 and default_steps(40) == 120 and default_steps(1000) == 200


def test_auto_is_a_valid_learning_rate_and_bad_values_say_so():
    recipe = load_recipe({"name": "r", "phases": [{"learning_rate": "auto"}]})
    assert recipe.phases[0].learning_rate == "auto"
    for bad in (0, -1e-3, "fast", True):
        with pytest.raises(RecipeError, match="phases.0.learning_rate.*positive number, or `auto`"):
            load_recipe({"name": "r", "phases": [{"learning_rate": bad}]})
    with pytest.raises(PhaseError, match="auto is resolved by the range test"):
        make_optimizer(PhaseConfig(learning_rate="auto"), steps_per_epoch=1)


def _image_recipe(tmp_path, **phase0):
    data = make_image_folder(tmp_path / "images", {"a": 12, "b": 12, "c": 12}, size=16)
    recipe = tiny_recipe(
        tmp_path, data, epochs=(1, 1), export={"enabled": False},
        backbone={"name": "resnet8", "weights": "none", "image_size": 16},
    )  # fmt: skip
    recipe["phases"][0].update(phase0)
    return recipe


def test_cli_lr_find_prints_a_rate_and_writes_the_plot(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(_image_recipe(tmp_path)))
    out = tmp_path / "find.png"
    assert main(["lr-find", str(path), "--steps", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "phases.0 'head' (head), from the fresh model: suggested learning_rate" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = json.loads(out.with_suffix(".json").read_text())
    assert f"{curve['suggestion']:.3g}" in printed and len(curve["losses"]) <= 30
    assert 1e-8 < curve["suggestion"] < 1.0
    # Never overwrites: the same --out again is refused, exit 2.
    assert main(["lr-find", str(path), "--steps", "30", "--out", str(out)]) == 2


def test_lr_find_applies_train_threads_as_train_does(tmp_path):
    # Where TensorFlow already runs (this process) a thread count cannot be applied: the same
    # clear error as tltk.train's, not a Hardware record naming threads it never set.
    tf.constant(1.0) + 1.0
    recipe = _image_recipe(tmp_path)
    recipe["train"]["threads"] = 7
    with pytest.raises(tltk.TltkError, match="train.threads: 7 cannot be applied"):
        tltk.lr_find(recipe, steps=12)
    assert not list((tmp_path / "runs").rglob("*.png"))  # refused before any work


def test_lr_find_of_a_recipe_without_phases_tests_the_default_plans_phase(tmp_path):
    recipe = _image_recipe(tmp_path)
    del recipe["phases"]  # weights none: the default plan is one from-scratch phase
    result = tltk.lr_find(recipe, steps=12)
    assert result.extra["phase"] == "'scratch' (all)" and result.plot.is_file()
    assert 1e-8 < result.suggestion < 1.0


@pytest.mark.slow
def test_auto_is_found_once_recorded_and_reused_when_the_run_resumes(tmp_path, monkeypatch):
    recipe = _image_recipe(tmp_path, learning_rate="auto")
    calls = []
    real = lr_auto.find_learning_rate
    monkeypatch.setattr(
        lr_auto, "find_learning_rate", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    result = tltk.train(recipe)
    run = result.run_dir
    state = json.loads((run / "state.json").read_text())
    found = json.loads((run / "lr_find" / "phase0.json").read_text())
    rate = state["phases"][0]["learning_rate"]
    assert calls == [1] and rate == found["suggestion"] and (run / "lr_find/phase0.png").is_file()
    assert yaml.safe_load((run / "recipe.yaml").read_text())["phases"][0]["learning_rate"] == rate
    assert result.history["learning_rate"][0] == pytest.approx(rate)  # phase 0 trained with it
    assert "learning_rate" not in state["phases"][1]  # a number in the recipe: no test
    # A later phase's test starts from this run's phase-0 weights.
    later = tltk.lr_find(recipe, phase=1, steps=20)
    assert later.started_from == f"{run} after phases.0" and later.plot.is_file()

    # Killed during phase 0 (after the test): the resumed run reuses the recorded rate.
    state.update(finished=False)
    state["phases"][0].update(done=False, end_epoch=0)
    state["phases"][1] = {k: state["phases"][1][k] for k in ("name", "train", "done")}
    state["phases"][1]["done"] = False
    (run / "state.json").write_text(json.dumps(state))
    (run.parent / "latest").unlink()
    tests_so_far = len(calls)
    again = tltk.train(recipe)
    assert again.run_dir == run and len(calls) == tests_so_far
    assert json.loads((run / "state.json").read_text())["phases"][0]["learning_rate"] == rate


def test_lr_find_of_a_later_phase_without_a_run_trains_the_earlier_phases_first(tmp_path):
    recipe = _image_recipe(tmp_path)
    result = tltk.lr_find(recipe, phase=1, steps=20)
    assert result.started_from.startswith("phases 0..0 trained first")
    assert not (tmp_path / "runs" / "tiny").exists() or not any(
        (p / "state.json").exists() for p in (tmp_path / "runs" / "tiny").iterdir()
    )  # the scratch run is gone; only the plot is left, under runs/NAME/lr_find/
    assert result.plot.parent == tmp_path / "runs" / "tiny" / "lr_find"
