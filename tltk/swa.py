"""`train.swa`: stochastic weight averaging (Izmailov et al. 2018), the mean of the weights at
the end of each of a phase's last N epochs, which the phase ends with.

The running mean is saved beside the phase's backup at every epoch's end (the last two, keyed
by the epoch a backup made then resumes at, as tltk/callback_state.py keeps its state), so a
phase killed and resumed goes on with the mean it had. BatchNorm statistics are averaged like
every other weight: exact for the default fine-tune (BatchNorm frozen), an approximation in a
phase with `batchnorm: train` (SWA's authors recompute them on the data).
"""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np

from tltk.callback_state import backed_up_epoch
from tltk.io import atomic_write_bytes
from tltk.log import say


class WeightAverage(keras.callbacks.Callback):
    """The mean of the model's weights at the ends of the last `epochs` epochs of `fit`,
    put in the model when fit ends (also when it stopped early: the epochs it had).

    Args:
        epochs: how many of the last epochs to average.
        folder: the phase's backup folder (None: nothing kept for a resume).
    """

    def __init__(self, epochs: int, folder: str | Path | None = None):
        super().__init__()
        self.epochs, self.folder = epochs, Path(folder) if folder else None
        self.mean: list[np.ndarray] | None = None
        self.count = 0

    def on_train_begin(self, logs=None):
        self.mean, self.count = None, 0
        resume = backed_up_epoch(self.folder) if self.folder else None
        saved = self._file(resume) if resume is not None else None
        if saved is not None and saved.is_file():
            with np.load(saved) as f:
                self.count = int(f["count"])
                self.mean = [f[f"w{i}"] for i in range(len(f.files) - 1)]

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.params["epochs"] - self.epochs:
            return
        weights = self.model.get_weights()
        self.count += 1
        if self.mean is None:
            self.mean = [w.astype("float64") for w in weights]
        else:  # a running mean: mean += (w - mean) / count
            self.mean = [m + (w - m) / self.count for m, w in zip(self.mean, weights, strict=True)]
        if self.folder is not None:
            self._save(epoch + 1)

    def on_train_end(self, logs=None):
        if self.mean is not None:
            current = self.model.get_weights()
            self.model.set_weights(
                [m.astype(w.dtype) for m, w in zip(self.mean, current, strict=True)]
            )
            say(f"Weight averaging: the mean of the last {self.count} epochs' weights")

    def _file(self, resume_epoch: int) -> Path:
        return self.folder / f"swa_resume{resume_epoch}.npz"

    def _save(self, resume_epoch: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._file(resume_epoch)
        buffer = io.BytesIO()
        np.savez(buffer, count=self.count, **{f"w{i}": m for i, m in enumerate(self.mean)})
        atomic_write_bytes(path, buffer.getvalue())  # a kill mid-write leaves the older file
        for old in self.folder.glob("swa_resume*.npz"):
            if old.name != path.name and old.name != self._file(resume_epoch - 1).name:
                old.unlink()
