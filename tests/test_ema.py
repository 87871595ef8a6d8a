"""`train.ema` and `train.swa`. EMA: the averaged weights are what validation sees, what a phase
ends with (also when early stopping ends it) and what a phase resumed from its backup goes on
with. SWA: a phase ends on the mean of its last epochs' weights, also when resumed."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from tltk.ema import ema_callbacks
from tltk.phases import make_optimizer
from tltk.recipe import PhaseConfig, RecipeError, load_recipe
from tltk.swa import WeightAverage

MOMENTUM = 0.8


def test_the_ema_key_is_validated():
    assert load_recipe({"name": "t", "train": {"ema": 0.99}}).train.ema == 0.99
    assert load_recipe({"name": "t"}).train.ema is None
    for bad in (1.0, 0.0, "yes"):
        with pytest.raises(RecipeError, match=r"train\.ema"):
            load_recipe({"name": "t", "train": {"ema": bad}})


class Recorder(keras.callbacks.Callback):
    """The trained weights after every step, and what the model holds at each epoch's end
    (where tltk's validation stands, right after the swap)."""

    def __init__(self):
        super().__init__()
        self.steps, self.at_epoch_end = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(self.model.get_weights())


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch + 1 >= self.epochs


def _model_and_data(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        optimizer=make_optimizer(PhaseConfig(learning_rate=0.05), steps_per_epoch=4, ema=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)
    return model, rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)


def _ema(steps: list) -> list[np.ndarray]:
    """Keras' average: the first step's weights, then momentum * average + (1 - m) * w."""
    average = [w.copy() for w in steps[0]]
    for weights in steps[1:]:
        average = [MOMENTUM * a + (1 - MOMENTUM) * w for a, w in zip(average, weights, strict=True)]
    return average


def _close(a: list, b: list) -> bool:
    return all(np.allclose(x, y, atol=1e-5) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("stop_after", [None, 2])
def test_validation_and_the_phase_result_are_the_average(stop_after):
    model, x, y = _model_and_data()
    swap, stop = ema_callbacks(resumed=False)
    recorder = Recorder()
    extra = [StopAfter(stop_after)] if stop_after else []
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[swap, recorder, *extra, stop], verbose=0)
    epochs = stop_after or 3
    assert len(recorder.steps) == 4 * epochs
    for epoch, seen in enumerate(recorder.at_epoch_end):  # what validation would score
        assert _close(seen, _ema(recorder.steps[: 4 * (epoch + 1)]))
    final = _ema(recorder.steps)
    assert _close(model.get_weights(), final)  # what the phase saves, evaluates, exports
    assert not _close(final, recorder.steps[-1])  # and that is not the last trained weights


def test_a_phase_resumed_from_its_backup_goes_on_with_the_average(tmp_path):
    whole, x, y = _model_and_data()
    swap, stop = ema_callbacks(resumed=False)
    whole.fit(x, y, batch_size=8, epochs=3, shuffle=False, callbacks=[swap, stop], verbose=0)

    class Kill(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 6:  # mid-epoch 2
                raise KeyboardInterrupt

    def backup(folder="backup"):
        return keras.callbacks.BackupAndRestore(str(tmp_path / folder), delete_checkpoint=False)

    killed, _, _ = _model_and_data()
    swap, stop = ema_callbacks(resumed=False)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                   callbacks=[swap, stop, backup(), Kill()])  # fmt: skip
    shutil.copytree(tmp_path / "backup", tmp_path / "copy")  # the backup made after epoch 1
    resumed, _, _ = _model_and_data(seed=1)  # other initial weights: the backup must win
    swap, stop = ema_callbacks(resumed=True)  # as tltk's fit says: it goes on from a backup
    resumed.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                callbacks=[swap, stop, backup()])  # fmt: skip
    assert _close(resumed.get_weights(), whole.get_weights())
    # Not told it resumed, the swap would train on from the average: another result.
    again, _, _ = _model_and_data(seed=1)
    swap, stop = ema_callbacks(resumed=False)
    again.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
              callbacks=[swap, stop, backup("copy")])  # fmt: skip
    assert not _close(again.get_weights(), whole.get_weights())


def test_the_swa_key_is_validated():
    assert load_recipe({"name": "t", "train": {"swa": 5}}).train.swa == 5
    with pytest.raises(RecipeError, match=r"train\.swa"):
        load_recipe({"name": "t", "train": {"swa": 0}})


def _plain_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_swa_ends_on_the_mean_of_the_last_epochs_also_after_a_resume(tmp_path):
    _, x, y = _model_and_data()
    model, recorder = _plain_model(), Recorder()
    model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0,
              callbacks=[recorder, WeightAverage(2)])  # fmt: skip
    mean = [(a + b) / 2 for a, b in zip(*recorder.at_epoch_end[2:], strict=True)]
    assert _close(model.get_weights(), mean)

    class Kill(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 13:  # in epoch 4, after epoch 3's mean
                raise KeyboardInterrupt

    folder = tmp_path / "backup"

    def callbacks(*extra):
        backup = keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False)
        return [WeightAverage(2, folder), backup, *extra]

    killed = _plain_model()
    with pytest.raises(KeyboardInterrupt):
        killed.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0,
                   callbacks=callbacks(Kill()))  # fmt: skip
    assert sorted(p.name for p in folder.glob("swa_*")) == ["swa_resume3.npz"]
    resumed = _plain_model(seed=1)
    resumed.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=callbacks())
    assert _close(resumed.get_weights(), mean)
