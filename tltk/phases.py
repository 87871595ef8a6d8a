"""Freeze -> unfreeze phases: which groups train, BatchNorm mode, optimizer and per-group LRs."""

from __future__ import annotations

import difflib
import math
from functools import cache

import keras

from tltk.compat import sublayers, variable_index
from tltk.recipe import PhaseConfig

_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


class PhaseError(ValueError):
    pass


def trainable_groups(
    spec: str | list[str], backbone_groups: list[str], where: str = "train"
) -> list[str]:
    """Resolve a phase's `train` value to backbone group names, in input-to-output order."""
    if isinstance(spec, str):
        if spec == "head":
            return []
        if spec == "all":
            return list(backbone_groups)
        if spec.startswith("top:"):
            try:
                k = int(spec[4:])
            except ValueError:
                raise PhaseError(f"{where}: {spec!r} should be top:K with an integer K") from None
            if not 0 <= k <= len(backbone_groups):
                raise PhaseError(
                    f"{where}: {spec!r}, but the backbone has {len(backbone_groups)} groups"
                )
            return list(backbone_groups[len(backbone_groups) - k :]) if k else []
        spec = [spec]
    unknown = [g for g in spec if g not in backbone_groups and g != "head"]
    if unknown:
        close = difflib.get_close_matches(unknown[0], backbone_groups, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PhaseError(
            f"{where}: unknown group {unknown[0]!r}.{hint} Groups: head, all, top:K, "
            f"{', '.join(backbone_groups)}"
        )
    return [g for g in backbone_groups if g in spec]


def set_trainable(
    groups: dict[str, list[keras.layers.Layer]], train: list[str], batchnorm: str
) -> None:
    """Freeze every backbone group except `train`; the head always trains.

    BatchNorm layers get `trainable = False` unless batchnorm == "train": with Keras 3 that is
    what keeps them in inference mode under fit() (a nested call with training=False does not).
    """
    for name, layers in groups.items():
        on = name == "head" or name in train
        freeze_bn = on and batchnorm == "frozen"
        for layer in layers:
            layer.trainable = on
            for sub in sublayers(layer):
                if freeze_bn and isinstance(sub, keras.layers.BatchNormalization):
                    sub.trainable = False
                if getattr(sub, "lora_enabled", False):
                    _lora_only(sub, on)


def _lora_only(layer: keras.layers.Layer, on: bool) -> None:
    """A LoRA layer trains its two factors only: `layer.trainable = True` above re-enabled its
    base kernel and bias, so freeze them again.

    Loading weights (as each later phase does) merges the LoRA update into the kernel and zeroes
    both factors, where their gradients are zero too; re-draw A so LoRA can learn again (B stays
    zero, so the layer's output does not change).
    """
    factors = (layer.lora_kernel_a, layer.lora_kernel_b)
    for v in layer.weights:
        v.trainable = on and any(v is f for f in factors)
    a = layer.lora_kernel_a
    if on and not keras.ops.any(keras.ops.convert_to_tensor(a) != 0):
        a.assign(keras.initializers.HeUniform()(a.shape, dtype=a.dtype))


def lr_multipliers(
    groups: dict[str, list[keras.layers.Layer]], train: list[str], phase: PhaseConfig
) -> dict[str, float]:
    """Variable path -> LR factor, from per-group multipliers and layer-wise decay."""
    factor = {g: phase.lr_multipliers.get(g, 1.0) for g in list(train) + ["head"]}
    unknown = set(phase.lr_multipliers) - set(groups)
    if unknown:
        raise PhaseError(
            f"lr_multipliers: unknown group(s) {sorted(unknown)}; groups: {list(groups)}"
        )
    if phase.layerwise_decay is not None:
        for depth, g in enumerate(reversed(train)):  # the top group gets decay**0
            factor[g] *= phase.layerwise_decay**depth
    out = {}
    for g, f in factor.items():
        if f != 1.0:
            for layer in groups[g]:
                for v in layer.trainable_weights:
                    out[v.path] = f
    return out


@cache
def _with_multipliers(base: type) -> type:
    """A subclass of a Keras optimizer that scales the LR per variable.

    Works for any optimizer whose update_step takes the learning rate, under any distribution
    strategy, and keeps the model a plain keras.Model trained with fit().
    """

    class Multiplied(base):
        def __init__(self, *args, lr_multipliers: dict[str, float] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self._multipliers = dict(lr_multipliers or {})
            self._factors: list[float] = []

        def build(self, variables):
            super().build(variables)
            self._factors = [self._multipliers.get(v.path, 1.0) for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            f = self._factors[variable_index(self, variable)]
            if f != 1.0:
                learning_rate = keras.ops.cast(learning_rate, variable.dtype) * f
            return super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            return {**super().get_config(), "lr_multipliers": self._multipliers}

    Multiplied.__name__ = f"{base.__name__}WithLRMultipliers"
    return Multiplied


def make_optimizer(
    phase: PhaseConfig,
    *,
    steps_per_epoch: int,
    multipliers: dict[str, float] | None = None,
    clipnorm: float | None = None,
    global_clipnorm: float | None = None,
    ema: float | None = None,
) -> keras.optimizers.Optimizer:
    if phase.learning_rate == "auto":
        raise PhaseError(
            "learning_rate: auto is resolved by the range test before a phase compiles "
            "(tltk.lr_auto.resolve_learning_rate, or tltk.lr_find); give a number here"
        )
    """The phase's optimizer; `steps_per_epoch` is the run's epoch length (a phase given in
    `steps` has its own, `tltk.plan.phase_length`)."""
    from tltk.plan import phase_length

    length = phase_length(phase, steps_per_epoch)
    lr: float | keras.optimizers.schedules.LearningRateSchedule = phase.learning_rate
    if phase.schedule == "cosine":
        total = max(1, length.steps)
        warmup = min(total - 1, math.ceil(phase.warmup_epochs * length.steps_per_epoch))
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else phase.learning_rate,
            decay_steps=max(1, total - warmup),
            warmup_target=phase.learning_rate if warmup else None,
            warmup_steps=warmup,
            alpha=0.01,
        )
    elif phase.warmup_epochs:
        raise PhaseError("warmup_epochs needs `schedule: cosine`")
    kwargs: dict = {"learning_rate": lr}
    if clipnorm:
        kwargs["clipnorm"] = clipnorm
    if global_clipnorm:
        kwargs["global_clipnorm"] = global_clipnorm
    if phase.weight_decay is not None:
        kwargs["weight_decay"] = phase.weight_decay
    if ema is not None:  # the optimizer keeps the average; fit ends on it (tltk.ema)
        kwargs.update(use_ema=True, ema_momentum=ema)
    if phase.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = phase.momentum
    if phase.nesterov:
        if phase.optimizer != "sgd":
            raise PhaseError(f"nesterov: true needs `optimizer: sgd`, not {phase.optimizer!r}")
        kwargs["nesterov"] = True
    base = _OPTIMIZERS[phase.optimizer]
    if multipliers:
        return _with_multipliers(base)(lr_multipliers=multipliers, **kwargs)
    return base(**kwargs)
