"""Training on several machines: MultiWorkerMirroredStrategy made usable by Keras 3, and what
the other workers take from the chief.

Every worker runs the same recipe in lockstep: the same data, the same batches (each worker
takes its share of every global batch), the same callbacks, and every collective operation
(each training step, validation and evaluation predictions, variable creation) on all of them.
The chief owns the run folder; the others write what their callbacks write into a scratch
folder of their own and keep nothing between launches. When a job is relaunched, whatever the
chief restores from its run folder (phase progress, the weights a phase ends with, a backup's
weights and optimizer state, the callbacks' memory) is broadcast to the others from the chief,
so a resumed job needs neither a filesystem shared by the machines nor backups on the workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tltk.callback_state import CallbackState, tracked_fields
from tltk.errors import TltkError
from tltk.strategy import cluster_role


class DataMismatch(TltkError, RuntimeError):
    """A worker's data differs from the chief's."""


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    return cluster_role(strategy).multi_worker


def from_chief(strategy: tf.distribute.Strategy, values) -> np.ndarray:
    """`values` (an array of the same shape and dtype on every worker) as the chief has them,
    on every worker: a sum over the replicas to which only the chief's first replica adds
    anything, so the result is the chief's exactly. Outside a cluster: `values`."""
    values = np.asarray(values)
    if not in_multi_worker_mode(strategy) or not values.size:
        return values
    if values.dtype == bool:  # collectives sum numbers only
        return from_chief(strategy, values.astype(np.float64)) > 0.5
    return np.asarray(_chief_sum(strategy, tf.constant(values))).reshape(values.shape)


@tf.function(reduce_retracing=True)
def _chief_sum(strategy: tf.distribute.Strategy, values: tf.Tensor) -> tf.Tensor:
    """The sum over all replicas of `values` on the chief's first replica, zeros elsewhere (in
    a tf.function: a strategy run eagerly warns of its overhead at every call)."""

    def contribution(mine):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.where(tf.equal(replica, 0), mine, tf.zeros_like(mine))

    per_replica = strategy.run(contribution, args=(values,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


def share_arrays(strategy: tf.distribute.Strategy, arrays: Sequence[np.ndarray]) -> list:
    """The chief's `arrays` on every worker, in one all-reduce per dtype."""
    arrays = [np.asarray(a) for a in arrays]
    out: list = [None] * len(arrays)
    for dtype in sorted({a.dtype.str for a in arrays}):
        picked = [i for i, a in enumerate(arrays) if a.dtype.str == dtype]
        flat = np.concatenate([arrays[i].ravel() for i in picked])
        shared, offset = from_chief(strategy, flat), 0
        for i in picked:
            size = arrays[i].size
            out[i] = shared[offset : offset + size].reshape(arrays[i].shape)
            offset += size
    return out


def share_variables(strategy: tf.distribute.Strategy, variables: Sequence) -> None:
    """Give every worker the chief's values of `variables` (Keras variables)."""
    if not in_multi_worker_mode(strategy):
        return
    values = share_arrays(strategy, [keras.ops.convert_to_numpy(v) for v in variables])
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def check_same_as_chief(strategy: tf.distribute.Strategy, what: str, digest: bytes) -> None:
    """Raise on every worker when this worker's `digest` of `what` differs from the chief's."""
    mine = np.frombuffer(digest[:12], dtype=np.uint8).astype(np.float64)
    differs = float(np.any(from_chief(strategy, mine) != mine))
    # Every worker must learn whether any worker differs (a sum over all replicas), or the
    # others would go on and wait for the one that stopped.
    if float(_replica_sum(strategy, tf.constant(differs, tf.float64))):
        raise DataMismatch(
            f"not every worker has the same {what} as the chief: every machine must read the "
            "same data (the same files at the same paths) with the same recipe"
        )


@tf.function
def _replica_sum(strategy: tf.distribute.Strategy, value: tf.Tensor) -> tf.Tensor:
    per_replica = strategy.run(tf.identity, args=(value,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


class FollowChief(keras.callbacks.Callback):
    """When the chief resumed a phase from its backup, gives every worker what the chief then
    restored: the model's weights, the optimizer's state (step, learning rate, moments) and what
    the tracked callbacks remember (`CallbackState`: best value, patience used, best weights).

    Must stand after BackupAndRestore and CallbackState, whose `on_train_begin` restore the
    chief's state; the workers' own folders hold no backup. Every worker gets `resumed` alike
    (the chief's word), so all of them take part in the broadcasts or none does.

    Args:
        strategy: the multi-worker strategy.
        resumed: the chief restored a backup for this phase.
        callback_state: the phase's CallbackState, if it has one.
    """

    def __init__(self, strategy, resumed: bool, callback_state: CallbackState | None = None):
        super().__init__()
        self.strategy, self.resumed, self.callback_state = strategy, resumed, callback_state

    def on_train_begin(self, logs=None):
        if not self.resumed:
            return
        model = self.model
        if not model.optimizer.built:  # fit builds it first; if not, build it on every worker
            model.optimizer.build(model.trainable_variables)
        share_variables(self.strategy, list(model.weights) + list(model.optimizer.variables))
        if self.callback_state is not None:
            self._share_callback_memory(self.callback_state.tracked)

    def _share_callback_memory(self, tracked: list) -> None:
        fields = [(c, f) for _, c in tracked for f in tracked_fields(c)]
        numbers = from_chief(self.strategy, [_number(getattr(c, f)) for c, f in fields])
        for (callback, field), value in zip(fields, numbers, strict=True):
            setattr(callback, field, _like(getattr(callback, field), value))
        holders = [c for _, c in tracked if getattr(c, "restore_best_weights", False)]
        has_best = from_chief(self.strategy, [c.best_weights is not None for c in holders])
        for callback, has in zip(holders, has_best, strict=True):
            if has:
                mine = callback.best_weights or [np.zeros_like(w) for w in self.model.get_weights()]
                callback.best_weights = share_arrays(self.strategy, mine)


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def _like(current, value: float):
    """The chief's `value` in the type the worker's field has (NaN stands for None)."""
    if np.isnan(value):
        return None
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    return float(value)
