"""Batch augmentation for the tf.data pipeline, built from Keras core (and keras-cv) layers.

`build_augment(cfg, seed=..., image_size=...)` returns a `BatchAugment`: a callable that the
input pipeline applies to whole batches inside `dataset.map(...)`, on CPU. Augmentation is never
part of the model, so the exported SavedModel serves exactly what was evaluated.

Order: the policy's layers, then `cfg.layers` in order, then MixUp/CutMix on the
{"images", "labels"} batch. With both MixUp and CutMix on, each batch gets exactly one of them,
chosen by a seeded coin (probability 0.5 each, as timm's `switch_prob`).

Every named policy, MixUp, CutMix and keras_cv.RandomCutout run inside `Dataset.map`. The
same seed gives the same batches only when the map runs sequentially, and `AugMix`'s chain of
operations does not follow the seed (docs/MEASURED.md says why).
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tltk.recipe import AugmentConfig

VALUE_RANGE = (0, 255)
"""Images reach the augmenter as float32 pixels in 0..255, the backbones rescale themselves."""

_LABEL_MIXERS = frozenset({"MixUp", "CutMix", "FourierMix"})
"""Layers that take and return {"images", "labels"} (label-mixing augmentations)."""

_KERAS_CV_PREFIXES = ("keras_cv.layers.", "keras_cv.")
_KERAS_PREFIXES = ("keras.layers.",)


class BatchAugment:
    """Augment a batch: `(images [B,S,S,3] float32 0..255, labels [B,K]) -> same shapes`.

    Build it with `build_augment` (outside `Dataset.map`: layers built inside the mapped
    function fail with "tf.function only supports singleton tf.Variables").

    Example:
    ```python
    augment = build_augment(AugmentConfig(policy="light", mixup=0.2), seed=0, image_size=32)
    ds = ds.batch(32).map(augment)  # ds yields (images, one_hot_labels)
    ```
    """

    def __init__(
        self,
        layers: Sequence[keras.layers.Layer],
        mixers: Sequence[keras.layers.Layer] = (),
        *,
        seed: int = 0,
    ):
        self.layers = list(layers)
        self.mixers = list(mixers)
        # A variable-backed generator: created here, advanced once per batch inside the map.
        self._coin = tf.random.Generator.from_seed(seed) if len(self.mixers) > 1 else None

    def __call__(self, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.cast(images, tf.float32)
        for layer in self.layers:
            if type(layer).__name__ in _LABEL_MIXERS:
                images, labels = _mix(layer, images, labels)
            else:
                images = layer(images, training=True)
        if len(self.mixers) == 1:
            images, labels = _mix(self.mixers[0], images, labels)
        elif self.mixers:
            first, second = self.mixers
            images, labels = tf.cond(
                self._coin.uniform(()) < 0.5,
                lambda: _mix(first, images, labels),
                lambda: _mix(second, images, labels),
            )
        # Some layers (RandomErasing's noise fill, keras-cv layers) can leave the value range.
        return tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 255.0), labels

    def __repr__(self) -> str:
        names = [type(layer).__name__ for layer in self.layers + self.mixers]
        mode = " (one per batch)" if len(self.mixers) > 1 else ""
        return f"BatchAugment({', '.join(names)}{mode})"


def _mix(layer: keras.layers.Layer, images: tf.Tensor, labels: tf.Tensor):
    labels = tf.cast(labels, tf.float32)
    flat = labels.shape.rank == 1  # regression targets [B]: the mixers need [B, K]
    out = layer({"images": images, "labels": labels[:, None] if flat else labels}, training=True)
    mixed = tf.cast(out["labels"], tf.float32)
    return tf.cast(out["images"], tf.float32), mixed[:, 0] if flat else mixed


def build_augment(cfg: AugmentConfig, *, seed: int, image_size: int) -> BatchAugment | None:
    """Build the batch augmenter a recipe's `augment` section asks for; None when it asks none.

    Args:
        cfg: the recipe's `augment` section.
        seed: base seed; each layer gets its own seed derived from it.
        image_size: the square input size; layers are checked to keep it, and layers that
            require a `target_size` (keras-cv RandomCropAndResize, ...) get it when not given.

    Raises:
        ValueError: an unknown layer name (naming `augment.layers[i].name` and the closest
            valid names), arguments a layer rejects, or a layer that changes the image shape.
    """
    policy = "none" if cfg.policy == "auto" else cfg.policy  # a run resolves auto first
    if policy == "none" and not cfg.layers and cfg.mixup <= 0 and cfg.cutmix <= 0:
        return None
    layers = policy_layers(policy, seed=seed)
    for i, spec in enumerate(cfg.layers):
        where = f"augment.layers[{i}]"
        cls = resolve_layer(spec.name, where=f"{where}.name")
        layer = _construct(cls, spec.args, seed=seed + 100 + i, image_size=image_size, where=where)
        _check_shape(layer, image_size, where)
        layers.append(layer)
    mixers = []
    if cfg.mixup > 0:
        mixers.append(keras.layers.MixUp(alpha=cfg.mixup, seed=seed + 1000, dtype="float32"))
    if cfg.cutmix > 0:
        if cfg.cutmix > 1:
            raise ValueError(
                f"augment.cutmix: got {cfg.cutmix}; Keras CutMix samples its Beta parameter in "
                "(0, factor] with factor at most 1 (1.0 is the paper's alpha)"
            )
        mixers.append(keras.layers.CutMix(factor=cfg.cutmix, seed=seed + 1001, dtype="float32"))
    if any(type(layer).__name__ == "AugMix" for layer in layers):
        warnings.warn(
            "AugMix chooses its operations with Python's random module when tf.data traces the "
            "map function: the same operation chain is used for every batch of the run and the "
            "seed does not make it reproducible.",
            stacklevel=2,
        )
    return BatchAugment(layers, mixers, seed=seed + 1002)


def policy_layers(policy: str, *, seed: int) -> list[keras.layers.Layer]:
    """The Keras core layers of a named policy (`none`, `shift`, `light`, `medium`, `heavy`,
    `randaugment`), each seeded from `seed`. Flips are horizontal only (natural images); `shift`
    has none. `auto` is resolved before (`tltk.plan.augment_config`)."""
    if policy not in ("none", "shift", "light", "medium", "heavy", "randaugment"):
        raise ValueError(f"augment.policy: unknown policy {policy!r}")
    if policy == "none":
        return []
    k, vr = keras.layers, VALUE_RANGE
    f32: dict[str, Any] = {"dtype": "float32"}  # stay float32 under a mixed-precision policy
    if policy == "shift":  # what digits_transfer.yaml uses: no flips, no zoom
        return [
            k.RandomRotation(0.04, seed=seed + 1, **f32),  # x 360 degrees: about 14
            k.RandomTranslation(0.08, 0.08, seed=seed + 3, **f32),
        ]
    if policy == "randaugment":
        return [
            k.RandomFlip("horizontal", seed=seed, **f32),
            k.RandAugment(value_range=vr, num_ops=2, factor=0.5, seed=seed + 1, **f32),
        ]
    strong = policy == "heavy"
    layers = [
        k.RandomFlip("horizontal", seed=seed, **f32),
        k.RandomRotation(0.08 if strong else 0.04, seed=seed + 1, **f32),  # x 360 degrees
        k.RandomZoom(0.2 if strong else 0.1, seed=seed + 2, **f32),
        k.RandomTranslation(0.15 if strong else 0.1, 0.15 if strong else 0.1, seed=seed + 3, **f32),
    ]
    if policy in ("medium", "heavy"):
        layers.append(
            k.RandomColorJitter(
                value_range=vr,
                brightness_factor=0.3 if strong else 0.2,
                contrast_factor=0.3 if strong else 0.2,
                saturation_factor=(0.3, 0.7) if strong else (0.4, 0.6),
                seed=seed + 4,
                **f32,
            )
        )
    if strong:
        # Erase one patch in half of the images (factor = probability, fixed by a 2-tuple).
        layers.append(k.RandomErasing(factor=(0.5, 0.5), value_range=vr, seed=seed + 5, **f32))
    return layers


def keras_layer_names() -> list[str]:
    """Names of the Keras core image preprocessing/augmentation layers usable in `layers`."""
    return sorted(
        name
        for name in dir(keras.layers)
        if isinstance(getattr(keras.layers, name), type)
        and ".preprocessing.image_preprocessing." in getattr(keras.layers, name).__module__
    )


def resolve_layer(name: str, *, where: str = "augment.layers[].name") -> type:
    """`RandomFlip`, `keras.layers.RandomFlip`, `keras_cv.RandomCutout` or
    `keras_cv.layers.RandomCutout` -> the layer class. keras_cv is imported only here."""
    for prefix in _KERAS_CV_PREFIXES:
        if name.startswith(prefix):
            short = name[len(prefix) :]
            try:
                import keras_cv
            except ImportError as e:
                raise ValueError(
                    f"{where}: {name!r} needs keras-cv (pip install 'tltk[keras-cv]'): {e}"
                ) from None
            valid = [
                n for n in dir(keras_cv.layers) if isinstance(getattr(keras_cv.layers, n), type)
            ]
            if short in valid:
                return getattr(keras_cv.layers, short)
            raise ValueError(_unknown(where, name, short, valid, "keras_cv."))
    short = name
    for prefix in _KERAS_PREFIXES:
        if name.startswith(prefix):
            short = name[len(prefix) :]
    valid = keras_layer_names()
    if short in valid:
        return getattr(keras.layers, short)
    if isinstance(getattr(keras.layers, short, None), type):
        raise ValueError(
            f"{where}: keras.layers.{short} is not an image augmentation layer. "
            f"Valid names: {', '.join(valid)}, or keras_cv.<Layer>"
        )
    raise ValueError(_unknown(where, name, short, valid, ""))


def _unknown(where: str, name: str, short: str, valid: list[str], prefix: str) -> str:
    lowered = {n.lower(): n for n in valid}
    close = difflib.get_close_matches(short.lower(), list(lowered), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(prefix + lowered[c] for c in close)}?" if close else ""
    where_from = "keras_cv.layers" if prefix else "keras.layers (or keras_cv.<Layer>)"
    return f"{where}: unknown augmentation layer {name!r} in {where_from}.{hint}"


def _construct(cls: type, args: dict, *, seed: int, image_size: int, where: str):
    """Instantiate `cls(**args)`, filling value_range (0, 255), a seed and a target size when
    the layer takes them and the recipe does not set them."""
    params = inspect.signature(cls.__init__).parameters
    args = dict(args)
    if "value_range" in params:
        args.setdefault("value_range", VALUE_RANGE)
    if "seed" in params:
        args.setdefault("seed", seed)
    if "target_size" in params and params["target_size"].default is inspect.Parameter.empty:
        args.setdefault("target_size", (image_size, image_size))
    if cls.__module__.startswith("keras."):
        args.setdefault("dtype", "float32")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {cls.__name__}({_show(args)}) failed: {e}") from None


def _show(args: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "dtype")


def _check_shape(layer: keras.layers.Layer, image_size: int, where: str) -> None:
    """Augmentation must keep [S, S, 3]: a crop or resize here would break the model input."""
    if type(layer).__name__ in _LABEL_MIXERS:
        return
    shape = (None, image_size, image_size, 3)
    try:
        out = tuple(layer.compute_output_shape(shape))
    except Exception:  # not every (keras-cv) layer implements it; then trust the layer
        return
    if len(out) == 4 and out[1:] != shape[1:] and None not in out[1:]:
        raise ValueError(
            f"{where}: {type(layer).__name__} changes the image shape {shape[1:]} -> {out[1:]}; "
            "augmentation must keep the model's input size"
        )
