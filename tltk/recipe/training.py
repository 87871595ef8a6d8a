"""The `train` section of a recipe: batch, strategy, precision, XLA, threads, averaging of
weights, the feature cache, where runs go, and the Keras callbacks (strict pydantic models,
as tltk.recipe.sections')."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tltk.recipe.sections import StrictModel


class EarlyStoppingConfig(StrictModel):
    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True
    cosine: Literal["full", "stop"] = "full"
    """In a phase with `schedule: cosine`: `full` runs the whole schedule (it decides the
    phase's length, as it owns its rate) and ends on its last weights, where the rate has
    decayed; `stop` stops early and restores as in a constant-rate phase (a stop before the
    rate has decayed ends it mid-schedule). The best epoch's weights are still checkpointed."""


class ReduceLRConfig(StrictModel):
    monitor: str = "val_loss"
    factor: float = 0.3
    patience: int = 2
    min_lr: float = 1e-7


class CallbacksConfig(StrictModel):
    early_stopping: EarlyStoppingConfig | None = Field(default_factory=EarlyStoppingConfig)
    reduce_lr: ReduceLRConfig | None = Field(default_factory=ReduceLRConfig)
    """Only used in phases with a constant schedule (a schedule already owns the LR)."""
    checkpoint: bool = True
    backup: bool = True
    terminate_on_nan: bool = True
    csv_log: bool = True
    tensorboard: bool = True


class TrainConfig(StrictModel):
    batch_size: int = Field(32, ge=1)
    """Per replica; the global batch is this times the number of replicas."""
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"] = "auto"
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    """auto: mixed_float16 on GPUs of compute capability 7.0+, mixed_bfloat16 on TPUs, float32
    on CPUs (see tltk/hardware.py). The head and the loss stay float32 under either mix."""
    clipnorm: float | None = None
    """Clip each gradient tensor to this norm."""
    global_clipnorm: float | None = None
    """Clip all gradients together to this global norm."""
    jit_compile: bool | Literal["auto"] = "auto"
    """auto: XLA on GPUs and TPUs, off on CPUs and under `deterministic`. On a CPU it depends
    on the model: 7x slower for MobileNetV3-Small, 11-13 % cheaper per image for the small_resnet
    family (BENCHMARKS.md, "Small images"), so a recipe may say `true` there."""
    threads: int | None = Field(None, ge=1)
    """TensorFlow's intra-op and inter-op thread pools, this many threads each (applied when
    the run's process starts TensorFlow). None: TensorFlow's default, about one per core."""
    steps_per_epoch: int | None = None
    """Cap the batches per epoch (quick runs)."""
    ema: float | None = Field(None, gt=0.0, lt=1.0)
    """Exponential moving average of the trained weights (Polyak averaging), this momentum
    (e.g. 0.99): validation, the best-epoch checkpoint, each phase's result, evaluation and
    export all use the averaged weights; the optimizer keeps the average, so a resumed phase
    goes on with it. None: off. Each phase starts a new average."""
    swa: int | None = Field(None, ge=1)
    """Stochastic weight averaging: each phase ends with the mean of its weights at the end of
    its last `swa` epochs (after early stopping's best-weights restore, which it replaces).
    None: off."""
    feature_cache: Literal["auto", "on", "off"] = "auto"
    """Phases that train only the head on a frozen backbone train it on the backbone's pooled
    features, computed once per split (tltk/features.py). `auto`: when training sees no
    augmentation (texts: always); `on`: also when the recipe augments images (the head then
    trains on un-augmented features); `off`: never (every epoch runs the backbone)."""
    runs_dir: str = "runs"
    deterministic: bool = False
    """Enable TensorFlow op determinism (slower)."""
    verbose: Literal[0, 1, 2] = 1
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig)
