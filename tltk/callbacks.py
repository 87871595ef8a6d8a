"""The Keras callbacks a phase trains with, plus the one that records phase progress."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from tltk.callback_state import CallbackState
from tltk.data.pipeline import predict_unpadded
from tltk.ema import ema_callbacks
from tltk.io import atomic_write_text
from tltk.recipe import CallbacksConfig, PhaseConfig, Recipe
from tltk.runs import Run, TrainingDiverged
from tltk.swa import WeightAverage


class DivergenceGuard(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN, but stopping at once with `TrainingDiverged`.

    TerminateOnNaN only asks fit to stop, so the epoch still ends: the backup, the checkpoint
    and the phase's weights would hold NaN. Raising here ends fit before any of them runs, so
    the last good state (the previous epoch's backup) is what a re-run resumes from.
    """

    def __init__(self, phase_name: str):
        super().__init__()
        self.phase_name, self.epoch = phase_name, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise TrainingDiverged(
                f"phase '{self.phase_name}' diverged: the loss became {float(loss)} at epoch "
                f"{self.epoch + 1}, batch {batch + 1}. The last good weights are kept (the "
                "previous epoch's backup, or the previous phase's result) and a re-run retries "
                "from there. Try a lower learning_rate, train.global_clipnorm: 1.0 (or "
                "clipnorm), and train.precision: float32 if it was mixed."
            )


def check_finite_weights(model: keras.Model, phase_name: str) -> None:
    """A phase whose weights hold NaN/inf (TerminateOnNaN switched off) is never saved."""
    for weight in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
            raise TrainingDiverged(
                f"phase '{phase_name}' diverged: {weight.path} holds NaN or infinite values; "
                "nothing of this phase was saved. Try a lower learning_rate, "
                "train.global_clipnorm: 1.0, and train.precision: float32."
            )


class PhaseProgress(keras.callbacks.Callback):
    """Records the last finished epoch of a phase in the run's state.json (for resume/plots)."""

    def __init__(self, run: Run, index: int):
        super().__init__()
        self.run, self.index = run, index

    def on_epoch_end(self, epoch, logs=None):
        self.run.phase(self.index)["end_epoch"] = epoch + 1
        self.run.save()


class ValidationMetrics(keras.callbacks.Callback):
    """`val_*` logs computed once per epoch from predictions on every validation example.

    Keras' own validation (`fit(validation_data=...)`) evaluates batch by batch on the replicas,
    and under several replicas a last partial batch leaves a replica an empty or ragged batch,
    which some kernels reject (oneDNN CPUs; TPUs need static shapes anyway). This callback
    predicts on whole batches (the last one padded with blanks, see `build_pipeline`), drops
    the blanks, and computes the loss (plus the regularisation penalties, as Keras does) and
    the compiled metrics on exactly the split's examples: the same values on any number of
    replicas. It must come first in the callback list, so that EarlyStopping,
    ReduceLROnPlateau, checkpoints and logs see its values.

    Args:
        dataset: batches of `(inputs, labels)`; only the inputs are used.
        targets: the split's labels as the loss takes them ([N, K] or [N]).
        loss: the compiled loss.
        metrics: fresh metric objects like the compiled ones (their names become `val_<name>`).
    """

    def __init__(self, dataset, targets: np.ndarray, loss, metrics: list):
        super().__init__()
        self.dataset, self.targets = dataset, np.asarray(targets, dtype="float32")
        self.loss, self.metrics = loss, metrics

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate())

    def evaluate(self) -> dict[str, float]:
        scores = predict_unpadded(self.model, self.dataset, len(self.targets))
        scores = scores.reshape(self.targets.shape)
        penalty = sum(float(keras.ops.convert_to_numpy(x)) for x in self.model.losses)
        out = {"val_loss": float(keras.ops.convert_to_numpy(self.loss(self.targets, scores)))}
        out["val_loss"] += penalty
        for metric in self.metrics:
            metric.reset_state()
            metric.update_state(self.targets, scores)
            out[f"val_{metric.name}"] = float(keras.ops.convert_to_numpy(metric.result()))
        return out


class PhaseCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras' ModelCheckpoint, saving `saves` (the whole task model) whatever model `fit`
    trains: a phase on cached features fits the head alone, and its best-weights file still
    loads into the task model like every other phase's."""

    def __init__(self, *args, saves: keras.Model | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.saves = saves

    def set_model(self, model):
        super().set_model(self.saves or model)


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
            self.csv_file = open(path, "a")  # closed by on_train_end
            self.append_header = False
        return header + new


def _monitoring(
    cfg: CallbacksConfig, phase: PhaseConfig, monitor: Callable[[str], str]
) -> list[keras.callbacks.Callback]:
    """Early stopping, and LR reduction on a plateau in a phase without a schedule."""
    out: list[keras.callbacks.Callback] = []
    es = cfg.early_stopping
    # A cosine phase runs its schedule out and ends on its last weights, where the rate has
    # decayed (measured on few-shot digits: patience 3 of 4-step epochs stopped a 30-epoch
    # schedule at epoch 11; restoring the best val-loss epoch took epoch 7, val accuracy 0.79,
    # where the last had 0.84).
    if es is not None and not (phase.schedule == "cosine" and es.cosine == "full"):
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
    return out


def phase_callbacks(
    recipe: Recipe,
    run: Run,
    index: int,
    phase: PhaseConfig,
    *,
    validation: ValidationMetrics | None,
    saves: keras.Model | None = None,
    resumed: bool = False,
) -> list[keras.callbacks.Callback]:
    """Fresh callback objects for one phase, so patience and best values restart cleanly.
    `validation` (if any) comes first, so every other callback sees its `val_*` values;
    with `train.ema`, right after the swap that puts the average in the model (tltk/ema.py).
    `saves`: the model the best-weights checkpoint holds (default: the one `fit` trains).
    `resumed`: the phase goes on from its backup."""
    cfg = recipe.train.callbacks
    has_val = validation is not None

    def monitor(name: str) -> str:
        return name if has_val or not name.startswith("val_") else name[4:]

    ema = ema_callbacks(resumed) if recipe.train.ema is not None else None
    out: list[keras.callbacks.Callback] = [ema[0]] if ema else []
    out += [validation] if has_val else []
    if cfg.terminate_on_nan:
        out.append(DivergenceGuard(phase.name or f"phase{index}"))
    out += _monitoring(cfg, phase, monitor)
    out += [ema[1]] if ema else []
    if recipe.train.swa is not None:  # after early stopping: its on_train_end restores first
        backup = run.dir / "backup" / f"phase{index}" if cfg.backup else None
        out.append(WeightAverage(recipe.train.swa, backup))
    if cfg.checkpoint:
        out.append(
            PhaseCheckpoint(
                str(run.dir / "checkpoints" / f"phase{index}_best.weights.h5"),
                monitor=monitor("val_loss"),
                save_best_only=True,
                save_weights_only=True,
                saves=saves,
            )
        )
    if cfg.csv_log:
        out.append(HistoryCSVLogger(str(run.dir / "history.csv")))
    if cfg.tensorboard:
        out.append(keras.callbacks.TensorBoard(str(run.dir / "tensorboard"), write_graph=False))
    # Last, in this order: an epoch's log rows are written before its backup, and its backup
    # before its progress record, so a kill at any point resumes without losing a row.
    if cfg.backup:
        backup = run.dir / "backup" / f"phase{index}"
        out.append(CallbackState(backup, out))  # what the callbacks above remember
        # Kept until the phase is recorded as done, so a kill between the end of fit() and that
        # record resumes at the phase's last epoch rather than redoing the phase.
        out.append(keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False))
    out.append(PhaseProgress(run, index))
    return out
