"""The one tf.data pipeline builder: a `Split` -> batches of (images, labels) for Keras.

    from_tensor_slices -> [train: shuffle files, reshuffled each epoch] -> parallel decode
    -> [cache -> train: shuffle the decoded images again, since a cache replays one order]
    -> batch -> preprocess -> augment -> prefetch

Decoding and caching come before augmentation, so a cached epoch still gets fresh augmentation.
Images are float32 [B, S, S, 3] in 0..255, decoded by `decode_image` like the exported model.
Labels are one-hot float32 [B, K] (so label smoothing, MixUp and CutMix work), multi-hot
float32 [B, K] for multi-label, float32 [B] for regression.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tltk.data.decode import decode_image
from tltk.data.types import Split

BatchFn = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]

CACHE_CAP_BYTES = 2 * 1024**3
"""`cache: auto` keeps a decoded split in memory up to this size (and 1/4 of the RAM)."""
SHUFFLE_BUFFER_BYTES = 256 * 1024**2
"""The post-cache shuffle buffer holds decoded images; bound its memory, not its length."""


def build_pipeline(
    split: Split,
    *,
    num_classes: int,
    image_size: int | None,
    batch_size: int,
    training: bool,
    seed: int,
    augment: BatchFn | None = None,
    cache: str = "auto",
    multi_label: bool = False,
    regression: bool = False,
    preprocess: BatchFn | None = None,
) -> tf.data.Dataset:
    """Batches of `(inputs, labels)` from a split; deterministic given `seed`.

    Args:
        split: examples of kind "path" (read and decoded), "bytes" (decoded) or "text" (passed
            through as strings; give `image_size=None`).
        num_classes: K, the width of one-hot / multi-hot labels.
        image_size: square size images are resized to; None for text.
        training: shuffle (reshuffled every epoch); evaluation keeps the split's order.
        augment: `(images, labels) -> (images, labels)` on each batch, on the CPU, after the
            cache (e.g. Keras augmentation layers, MixUp). Build layers outside this call.
        cache: "auto" (in memory when the decoded split fits, see `should_cache`), "memory" or
            "none".
        preprocess: `(inputs, labels) -> (inputs, labels)` on each batch before `augment`; the
            hook for a text tokenizer (kind "text") or any model-specific preprocessing.
    """
    if cache not in ("auto", "memory", "none"):
        raise ValueError(f"cache must be auto, memory or none, not {cache!r}")
    n = len(split)
    labels = _label_array(split.labels, multi_label=multi_label, regression=regression)
    ds = tf.data.Dataset.from_tensor_slices((_examples(split), labels))
    if training:
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)

    one_hot = labels.ndim == 1 and not regression
    decode = _decoder(split.kind, image_size)

    def prepare(example, label):
        if one_hot:
            label = tf.one_hot(label, num_classes, dtype=tf.float32)
        return decode(example), label

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    per_example = 3 * 4 * image_size**2 if image_size else 0
    if split.kind != "text" and (
        cache == "memory" or (cache == "auto" and should_cache(n, image_size))
    ):
        ds = ds.cache()
        if training:  # the cache replays one order; reshuffle what it replays
            buffer = min(max(n, 1), max(batch_size, SHUFFLE_BUFFER_BYTES // max(per_example, 1)))
            ds = ds.shuffle(buffer, seed=seed + 1, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    for fn in (preprocess, augment):
        if fn is not None:
            ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def should_cache(num_examples: int, image_size: int | None) -> bool:
    """`cache: auto`: does the decoded float32 split fit in min(RAM / 4, CACHE_CAP_BYTES)?"""
    if not image_size:
        return False
    needed = num_examples * image_size * image_size * 3 * 4
    return needed <= min(memory_bytes() // 4, CACHE_CAP_BYTES)


def memory_bytes() -> int:
    """Physical memory, or the container's cgroup limit when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """'balanced' class weights n / (k * count_c) for Keras' `class_weight`.

    `labels` are class ids [N] or one-hot [N, K]. Classes absent from `labels` get 1.0.
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    out = {c: 1.0 for c in range(num_classes)}
    out.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return out


def _examples(split: Split) -> tf.Tensor:
    # An explicit tf.string constant: works for str and bytes alike, and for an empty split.
    return tf.constant([x if isinstance(x, bytes) else str(x) for x in split.examples], tf.string)


def _label_array(labels: np.ndarray, *, multi_label: bool, regression: bool) -> np.ndarray:
    labels = np.asarray(labels)
    if regression or multi_label or labels.ndim == 2:
        return labels.astype(np.float32)
    return labels.astype(np.int64)  # one-hot in the map: N x K floats need not sit in memory


def _decoder(kind: str, image_size: int | None) -> Callable[[tf.Tensor], tf.Tensor]:
    if kind == "text":
        return lambda text: text  # the text side maps its tokenizer via `preprocess`
    if not image_size:
        raise ValueError(f"image_size is required for a split of kind {kind!r}")
    if kind == "path":
        return lambda path: decode_image(tf.io.read_file(path), image_size)
    if kind == "bytes":
        return lambda encoded: decode_image(encoded, image_size)
    raise ValueError(f"unknown split kind {kind!r}")
