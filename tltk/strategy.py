"""Pick the tf.distribute strategy for the hardware (or the one a recipe names), and say which
task of a multi-worker cluster this process is.

A multi-worker strategy must be the first TensorFlow thing a process makes: it configures the
process's collective ops and starts its gRPC server, which TensorFlow refuses once any other op
has run. `tltk.train` therefore makes the strategy before it reads any data, and
`make_strategy` keeps one per process (a second `train` in the same process reuses it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf

_MADE: dict[str, tf.distribute.Strategy] = {}


def detect_strategy_name() -> str:
    """TPU -> tpu; TF_CONFIG with several workers -> multi_worker; 2+ GPUs -> mirrored;
    one GPU -> one_device; else default."""
    if (
        os.environ.get("TPU_NAME")
        or os.environ.get("COLAB_TPU_ADDR")
        or os.path.exists("/dev/accel0")
    ):
        return "tpu"
    if len(_cluster_tasks(_tf_config())) > 1:
        return "multi_worker"
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return "mirrored"
    if len(gpus) == 1:
        return "one_device"
    return "default"


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Build the strategy (once per process and name); model and optimizer must then be
    created inside `strategy.scope()`."""
    if name == "auto":
        name = detect_strategy_name()
    if name not in _MADE:
        _MADE[name] = _make(name)
    return _MADE[name]


def _make(name: str) -> tf.distribute.Strategy:
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        return KerasMultiWorkerStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


class KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3 gives it.

    On the multi-worker path, Keras 3.15's `fit` calls `strategy.reduce` with a whole nested
    batch (to build the model from it: bool and string tensors included) and with `axis=0` on
    scalar logs; the stock strategy rejects both, so the first `fit` fails
    (keras-team/keras#20585). This one reduces each tensor of a structure, a scalar across the
    replicas only, and returns the local value of a tensor that cannot be all-reduced (bool,
    string: only its shape is used). tests/test_multiworker.py checks that the stock strategy
    still fails, so this class goes when Keras is fixed.
    """

    def reduce(self, reduce_op, value, axis):
        def one(v):
            local = self.experimental_local_results(v)[0]
            if not (local.dtype.is_floating or local.dtype.is_integer):
                return local
            scalar_axis = axis is not None and local.shape.rank == 0
            return super(KerasMultiWorkerStrategy, self).reduce(
                reduce_op, v, None if scalar_axis else axis
            )

        return tf.nest.map_structure(one, value)


def describe(strategy: tf.distribute.Strategy) -> str:
    return f"{strategy_name(strategy)} with {strategy.num_replicas_in_sync} replica(s)"


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public class name (TensorFlow's MultiWorkerMirroredStrategy is an alias; the
    default strategy, no distribution, has none)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return "DefaultStrategy"
    return type(strategy).__name__


@dataclass(frozen=True)
class Role:
    """This process's place in a cluster: `chief` owns the run folder and the export."""

    task_type: str
    """`chief`, `worker` (from TF_CONFIG), or `local` (no cluster)."""
    index: int
    num_workers: int
    """Processes that train together (chief included)."""
    has_chief_task: bool = False
    """The cluster names a separate `chief` task (then `worker` 0 is not the chief)."""

    @property
    def is_chief(self) -> bool:
        return self.task_type in ("chief", "local") or (
            self.task_type == "worker" and self.index == 0 and not self.has_chief_task
        )

    @property
    def multi_worker(self) -> bool:
        return self.num_workers > 1

    @property
    def name(self) -> str:
        return "local" if self.task_type == "local" else f"{self.task_type} {self.index}"


def cluster_role(strategy: tf.distribute.Strategy) -> Role:
    """Which task this process is, from the strategy's cluster (TF_CONFIG): `chief` if the
    cluster has one, else `worker` 0 is the chief, as in Keras and TensorFlow."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return Role("local", 0, 1)
    tasks = _cluster_tasks(resolver.cluster_spec().as_dict())
    if len(tasks) < 2:
        return Role("local", 0, 1)
    jobs = {job for job, _ in tasks}
    return Role(resolver.task_type, int(resolver.task_id), len(tasks), "chief" in jobs)


def _tf_config() -> dict:
    return json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")


def _cluster_tasks(config: dict) -> list[tuple[str, int]]:
    """The (job, index) pairs that train: `chief` and `worker` tasks (an `evaluator` or a
    parameter server does not take part in MultiWorkerMirroredStrategy's all-reduce)."""
    cluster = config.get("cluster", config)
    return [(job, i) for job in ("chief", "worker") for i in range(len(cluster.get(job, ())))]
