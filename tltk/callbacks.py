"""The Keras callbacks a phase trains with, plus the one that records phase progress."""

from __future__ import annotations

import keras

from tltk.recipe import PhaseConfig, Recipe
from tltk.runs import Run


class PhaseProgress(keras.callbacks.Callback):
    """Records the last finished epoch of a phase in the run's state.json (for resume/plots)."""

    def __init__(self, run: Run, index: int):
        super().__init__()
        self.run, self.index = run, index

    def on_epoch_end(self, epoch, logs=None):
        self.run.phase(self.index)["end_epoch"] = epoch + 1
        self.run.save()


def phase_callbacks(
    recipe: Recipe, run: Run, index: int, phase: PhaseConfig, *, has_val: bool
) -> list[keras.callbacks.Callback]:
    """Fresh callback objects for one phase, so patience and best values restart cleanly."""
    cfg = recipe.train.callbacks

    def monitor(name: str) -> str:
        return name if has_val or not name.startswith("val_") else name[4:]

    out: list[keras.callbacks.Callback] = []
    if cfg.terminate_on_nan:
        out.append(keras.callbacks.TerminateOnNaN())
    if cfg.early_stopping is not None:
        es = cfg.early_stopping
        out.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor(es.monitor),
                patience=es.patience,
                min_delta=es.min_delta,
                restore_best_weights=es.restore_best_weights,
                verbose=1,
            )
        )
    if cfg.reduce_lr is not None and phase.schedule == "constant":
        rl = cfg.reduce_lr
        out.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor(rl.monitor),
                factor=rl.factor,
                patience=rl.patience,
                min_lr=rl.min_lr,
                verbose=1,
            )
        )
    if cfg.checkpoint:
        out.append(
            keras.callbacks.ModelCheckpoint(
                str(run.dir / "checkpoints" / f"phase{index}_best.weights.h5"),
                monitor=monitor("val_loss"),
                save_best_only=True,
                save_weights_only=True,
            )
        )
    if cfg.csv_log:
        out.append(keras.callbacks.CSVLogger(str(run.dir / "history.csv"), append=True))
    if cfg.tensorboard:
        out.append(keras.callbacks.TensorBoard(str(run.dir / "tensorboard"), write_graph=False))
    # Last, in this order: an epoch's log rows are written before its backup, and its backup
    # before its progress record, so a kill at any point resumes without losing a row.
    if cfg.backup:
        # Kept until the phase is recorded as done, so a kill between the end of fit() and that
        # record resumes at the phase's last epoch rather than redoing the phase.
        out.append(
            keras.callbacks.BackupAndRestore(
                str(run.dir / "backup" / f"phase{index}"), delete_checkpoint=False
            )
        )
    out.append(PhaseProgress(run, index))
    return out
