"""The Keras callbacks a phase trains with, plus the one that records phase progress."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import keras

from tltk.io import atomic_write_text
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


class HistoryCSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger, appending every phase's epochs to one `history.csv` under one header.

    Keras' own logger, when appending, writes each row in the order of the keys its phase logs,
    under whatever header the file already has; a phase that logs other keys (a cosine phase
    has no ReduceLROnPlateau `learning_rate`) would shift every column. This one logs the
    learning rate in every phase (a schedule's current value too), keeps the file's header,
    and rewrites the file with a wider header when a new key appears.
    """

    def __init__(self, filename: str, separator: str = ","):
        super().__init__(filename, separator=separator, append=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if "learning_rate" not in logs and self.model is not None:
            lr = getattr(self.model.optimizer, "learning_rate", None)
            if lr is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        if self.keys is None:
            self.keys = self._columns(logs)
        super().on_epoch_end(epoch, logs)

    def _columns(self, logs: dict) -> list[str]:
        """The file's columns (minus epoch), widened by the keys it lacks."""
        path = Path(self.filename)
        text = path.read_text() if path.is_file() else ""
        rows = list(csv.reader(io.StringIO(text), delimiter=self.sep))
        header = rows[0][1:] if rows else []
        new = sorted(set(logs) - set(header))
        if header and new:  # rewrite with the wider header; old rows get empty cells
            out = io.StringIO()
            writer = csv.writer(out, delimiter=self.sep)
            writer.writerow(["epoch", *header, *new])
            writer.writerows(row + [""] * len(new) for row in rows[1:])
            self.csv_file.close()
            atomic_write_text(path, out.getvalue())
            self.csv_file = open(path, "a")  # noqa: SIM115  (closed by on_train_end)
            self.append_header = False
        return header + new


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
        out.append(HistoryCSVLogger(str(run.dir / "history.csv")))
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
