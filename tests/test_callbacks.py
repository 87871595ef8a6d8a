"""The history logger: every phase's epochs under one header, learning rate always logged."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tltk.callbacks import HistoryCSVLogger
from tltk.plots import read_history_csv


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))


def test_phases_logging_different_keys_stay_aligned(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), np.eye(2)[rng.integers(0, 2, 32)]
    path = tmp_path / "history.csv"
    model = tiny_model()
    # Phase 1: constant LR with ReduceLROnPlateau (which logs `learning_rate`), no metric.
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    first = model.fit(
        x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0,
        callbacks=[keras.callbacks.ReduceLROnPlateau(patience=5), HistoryCSVLogger(str(path))],
    )  # fmt: skip
    # Phase 2: a schedule (nothing logs the LR but the logger) and a new metric: a new column.
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5)
    model.compile(keras.optimizers.SGD(schedule), "categorical_crossentropy", metrics=["accuracy"])
    second = model.fit(
        x, y, validation_data=(x, y), epochs=4, initial_epoch=2, batch_size=8, verbose=0,
        callbacks=[HistoryCSVLogger(str(path))],
    )  # fmt: skip
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "epoch" and len(header) == len(set(header))
    history = read_history_csv(path)
    assert history["epoch"] == [0, 1, 2, 3]
    np.testing.assert_allclose(
        history["val_loss"], first.history["val_loss"] + second.history["val_loss"], rtol=1e-6
    )
    np.testing.assert_allclose(history["val_accuracy"][2:], second.history["val_accuracy"])
    assert np.isnan(history["accuracy"][:2]).all()  # not logged in phase 1: empty cells
    # LR: 0.1 in phase 1; the schedule's value after each epoch's 4 steps in phase 2.
    np.testing.assert_allclose(history["learning_rate"][:2], [0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(history["learning_rate"][2:], [0.025, 0.0125], rtol=1e-5)


def test_resumed_phase_appends_under_the_existing_header(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,learning_rate,loss,val_loss\n0,0.1,0.9,1.0\n")
    model = tiny_model()
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    x = np.ones((8, 4))
    y = np.eye(2)[[0, 1] * 4]
    model.fit(
        x, y, validation_data=(x, y), epochs=2, initial_epoch=1, verbose=0,
        callbacks=[HistoryCSVLogger(str(path))],
    )  # fmt: skip
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,learning_rate,loss,val_loss" and len(lines) == 3
    history = read_history_csv(path)
    assert history["epoch"] == [0, 1] and history["loss"][0] == pytest.approx(0.9)
    assert history["learning_rate"][1] == pytest.approx(0.1)
