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


def test_backup_epoch_and_callback_state_survive_a_restart(tmp_path):
    """What a resumed phase needs from a killed one: the epoch BackupAndRestore resumes at (read
    from Keras' own metadata file, so this fails loudly if its format changes) and what
    EarlyStopping / ReduceLROnPlateau / ModelCheckpoint remembered, best weights included."""
    from tltk.callback_state import CallbackState, backed_up_epoch

    x = np.linspace(-1, 1, 64, dtype="float32").reshape(-1, 1)
    y = 3 * x

    def model():
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        return m

    def callbacks():
        out = [
            keras.callbacks.EarlyStopping(monitor="loss", patience=50, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=50),
            keras.callbacks.ModelCheckpoint(
                str(tmp_path / "best.weights.h5"), monitor="loss", save_best_only=True,
                save_weights_only=True,
            ),
        ]  # fmt: skip
        return out + [CallbackState(tmp_path / "b", out), keras.callbacks.BackupAndRestore(
            str(tmp_path / "b"), delete_checkpoint=False)]  # fmt: skip

    assert backed_up_epoch(tmp_path / "b") is None
    first, cbs = model(), callbacks()
    first.fit(x, y, epochs=3, batch_size=16, callbacks=cbs, verbose=0)
    assert backed_up_epoch(tmp_path / "b") == 3
    es, rl, ck = cbs[:3]
    assert es.best_epoch == 2 and es.best < 1e9 and ck.best == es.best
    # A fresh process: new callbacks, given back what the old ones knew when epoch 3 began.
    second, again = model(), callbacks()
    again[3].set_model(second)
    for cb in again[:3]:
        cb.set_model(second)
        cb.on_train_begin()
    again[3].on_train_begin()
    for old, new in zip(cbs[:3], again[:3], strict=True):
        assert new.best == pytest.approx(old.best) and getattr(new, "wait", 0) == getattr(
            old, "wait", 0
        )
    for a, b in zip(again[0].best_weights, es.best_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_cosine_phase_runs_its_schedule_out_unless_told_to_stop():
    from tltk.callbacks import _monitoring
    from tltk.recipe import CallbacksConfig, PhaseConfig

    def kinds(phase, **early_stopping):
        cfg = CallbacksConfig(early_stopping=early_stopping)
        return [type(c).__name__ for c in _monitoring(cfg, phase, lambda name: name)]

    cosine, constant = PhaseConfig(schedule="cosine"), PhaseConfig()
    assert kinds(cosine) == []  # no early stop, no best-epoch restore: the last weights
    assert kinds(cosine, cosine="stop") == ["EarlyStopping"]
    assert kinds(constant) == ["EarlyStopping", "ReduceLROnPlateau"]


def test_weights_with_nan_are_never_saved_as_a_phase_result():
    import keras
    import numpy as np
    import pytest

    from tltk.callbacks import check_finite_weights
    from tltk.runs import TrainingDiverged

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    check_finite_weights(model, "head")  # finite: nothing happens
    kernel = model.layers[0].kernel
    kernel.assign(np.array([[np.nan], [0.0]], "float32"))
    with pytest.raises(TrainingDiverged, match="phase 'head' diverged: .*kernel holds NaN"):
        check_finite_weights(model, "head")
