"""Keeps the memory of stateful Keras callbacks across a killed and resumed phase."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from tltk.io import atomic_write_json

# The counters each callback keeps between epochs (all public attributes of those classes).
TRACKED = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


class CallbackState(keras.callbacks.Callback):
    """Saves, with each epoch's backup, what EarlyStopping, ReduceLROnPlateau and
    ModelCheckpoint remember (best value, patience used, the best weights), and gives it back
    to them when BackupAndRestore resumes the phase.

    Without it a resumed phase forgets its best epoch: EarlyStopping would wait its whole
    patience again and restore the best weights seen since the restart, and the best-only
    checkpoint would be overwritten by the first epoch after it. Must stand before
    BackupAndRestore (saved first, so a state never lags its backup) and its `on_train_begin`
    after theirs, which reset them: tltk puts it right after the callbacks it tracks.

    Args:
        backup_dir: the phase's BackupAndRestore folder.
        callbacks: the phase's callbacks; those of the TRACKED kinds are kept.
    """

    def __init__(self, backup_dir: str | Path, callbacks: list[keras.callbacks.Callback]):
        super().__init__()
        self.dir = Path(backup_dir)
        self.tracked = [(i, c) for i, c in enumerate(callbacks) if tracked_fields(c)]

    def on_train_begin(self, logs=None):
        # Before BackupAndRestore loads the backup's weights, after the callbacks above reset.
        resume_epoch = backed_up_epoch(self.dir)
        if resume_epoch is not None:
            self.restore(resume_epoch)

    def on_epoch_end(self, epoch, logs=None):
        state = {}
        for i, callback in self.tracked:
            state[str(i)] = {f: _plain(getattr(callback, f)) for f in tracked_fields(callback)}
            best_weights = getattr(callback, "best_weights", None)
            if best_weights is not None and callback.best_epoch == epoch:
                self.model.save_weights(str(self._best_weights(i, epoch)))
        saved = self._load()
        saved[str(epoch + 1)] = state  # keyed by the epoch a backup made now resumes at
        atomic_write_json(self.dir / "callback_state.json", dict(list(saved.items())[-2:]))

    def restore(self, resume_epoch: int) -> None:
        """Give the callbacks what they knew when the backup of `resume_epoch` was made."""
        state = self._load().get(str(resume_epoch))
        if not state:
            return
        for i, callback in self.tracked:
            for field, value in state.get(str(i), {}).items():
                setattr(callback, field, value)
            if getattr(callback, "restore_best_weights", False):
                path = self._best_weights(i, callback.best_epoch)
                if path.is_file():
                    current = self.model.get_weights()
                    self.model.load_weights(str(path))
                    callback.best_weights = self.model.get_weights()
                    self.model.set_weights(current)

    def _load(self) -> dict:
        path = self.dir / "callback_state.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _best_weights(self, index: int, epoch: int) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / f"callback{index}_best_epoch{epoch}.weights.h5"


def tracked_fields(callback) -> tuple[str, ...]:
    """The fields tltk keeps for `callback` (none for a kind it does not track)."""
    return next((f for kind, f in TRACKED.items() if isinstance(callback, kind)), ())


def _plain(value):
    """JSON-safe: numpy scalars to Python numbers; inf stays a float."""
    try:
        return float(value) if not isinstance(value, int | type(None)) else value
    except (TypeError, ValueError):
        return value


def backed_up_epoch(backup_dir: str | Path) -> int | None:
    """The epoch a BackupAndRestore in `backup_dir` will resume `fit` at, or None.

    Reads Keras' own `training_metadata.json` (its format: {"epoch": E, "batch": B}); the one
    place tltk depends on it, kept in step by tests/test_callbacks.py.
    """
    path = Path(backup_dir) / "training_metadata.json"
    if not (Path(backup_dir) / "latest.weights.h5").is_file() or not path.is_file():
        return None
    return int(json.loads(path.read_text())["epoch"])
