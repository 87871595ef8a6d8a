"""Defaults that follow the hardware, and the record of what a run chose.

`train.precision: auto` is mixed_float16 on GPUs that have float16 tensor cores (compute
capability 7.0 and up), mixed_bfloat16 on TPUs and float32 on CPUs; `train.jit_compile: auto`
is XLA on GPUs and TPUs and off on CPUs and under `train.deterministic` (Keras turns XLA off
there anyway). On a CPU XLA is a per-model choice (/BENCHMARKS.md): MobileNetV3-Small trains
7x slower with it, the small_resnet family 11-13 % cheaper per image, so `auto` stays off
there and a recipe of the small family may say `jit_compile: true`. tltk decides these
itself: Keras' own `jit_compile="auto"` turns XLA off under any distribution strategy,
which tltk always trains in. `train.batch_size` is per replica; the global batch is that times
the replicas. What a run chose goes to RUN/state.json ("hardware") and the log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tensorflow as tf

from tltk.errors import TltkError
from tltk.strategy import Role, strategy_name

MIXED_FLOAT16_MIN_CAPABILITY = (7, 0)
"""Volta and newer: float16 tensor cores; older GPUs gain little from mixed_float16."""


@dataclass(frozen=True)
class Hardware:
    """What a run trains on and with, as resolved for this machine."""

    accelerator: str
    """cpu, gpu or tpu."""
    strategy: str
    replicas: int
    workers: int
    task: str
    """This process in the cluster: `local`, or e.g. `worker 0` (with `chief` if it is)."""
    precision: str
    jit_compile: bool
    batch_per_replica: int
    global_batch: int
    input_sharding: str
    """How the workers split the input: `DATA` (each takes its share of every batch)."""
    threads: int | None = None
    """TensorFlow's intra-op and inter-op threads each, as `train.threads` set them; None:
    TensorFlow's default (about one per core)."""

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        cluster = f" over {self.workers} workers, this one {self.task}" if self.workers > 1 else ""
        sharding = f"; input sharded by {self.input_sharding}" if self.workers > 1 else ""
        threads = f"; {self.threads} TensorFlow thread(s)" if self.threads else ""
        return (
            f"{self.accelerator}, {self.strategy} with {self.replicas} replica(s){cluster}; "
            f"global batch {self.global_batch} ({self.batch_per_replica} per replica); "
            f"precision {self.precision}; jit_compile {'on' if self.jit_compile else 'off'}"
            f"{threads}{sharding}"
        )


def choose(train, strategy: tf.distribute.Strategy, role: Role) -> Hardware:
    """Resolve a recipe's `train` section (its `auto` values) for this strategy's hardware."""
    kind = accelerator(strategy)
    replicas = strategy.num_replicas_in_sync
    return Hardware(
        accelerator=kind,
        strategy=strategy_name(strategy),
        replicas=replicas,
        workers=role.num_workers,
        task=role.name + (" (chief)" if role.is_chief and role.multi_worker else ""),
        precision=resolve_precision(train.precision, kind, gpu_compute_capabilities()),
        jit_compile=resolve_jit_compile(train.jit_compile, kind, train.deterministic),
        batch_per_replica=train.batch_size,
        global_batch=train.batch_size * replicas,
        input_sharding="DATA",
        threads=train.threads,
    )


def set_threads(threads: int | None) -> None:
    """Size TensorFlow's intra-op and inter-op thread pools (`train.threads`), which only
    works before the process's first TensorFlow op: `tltk.train` calls this first. None leaves
    TensorFlow's default. On a busy CPU one thread each costs less CPU per image than the
    default's busy-waiting pair (BENCHMARKS.md, "Small images")."""
    if threads is None:
        return
    pools = tf.config.threading
    now = (pools.get_intra_op_parallelism_threads(), pools.get_inter_op_parallelism_threads())
    if now == (threads, threads):
        return
    try:
        pools.set_intra_op_parallelism_threads(threads)
        pools.set_inter_op_parallelism_threads(threads)
    except RuntimeError as error:  # the runtime already started in this process
        raise TltkError(
            f"train.threads: {threads} cannot be applied: TensorFlow already runs in this "
            f"process with intra-op {now[0]}, inter-op {now[1]} (0: its default) ({error}). "
            "Set it in a fresh process (`tltk train`), or leave train.threads out; "
            "TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS set it for a whole process."
        ) from None


def accelerator(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """(major, minor) of each visible GPU; (0, 0) where TensorFlow does not say."""
    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        out.append(tuple(details.get("compute_capability") or (0, 0)))
    return out


def resolve_precision(requested: str, kind: str, capabilities: list[tuple[int, int]]) -> str:
    """`auto` -> the Keras dtype policy that pays on this accelerator; any other value as is."""
    if requested != "auto":
        return requested
    if kind == "tpu":
        return "mixed_bfloat16"
    if kind == "gpu" and capabilities and min(capabilities) >= MIXED_FLOAT16_MIN_CAPABILITY:
        return "mixed_float16"
    return "float32"


def resolve_jit_compile(requested: bool | str, kind: str, deterministic: bool = False) -> bool:
    """`auto` -> XLA on GPUs and TPUs, not on CPUs nor under op determinism."""
    if requested != "auto":
        return bool(requested)
    return kind in ("gpu", "tpu") and not deterministic
