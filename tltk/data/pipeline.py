"""The one tf.data pipeline builder: a `Split` -> batches of (inputs, labels) for Keras.

    from_tensor_slices -> [train: permuted per pass] -> [read files] -> parallel decode
    -> [cache -> train: permute the decoded examples again, since a cache replays one order]
    -> batch [drop or pad the remainder] -> prepare_batch -> augment -> prefetch

What an example becomes is the modality's `Preprocessor` (tltk/modalities/): its `decode` per
example (images: float32 [S, S, 3] in 0..255 by `decode_image`, as in the exported model) and
its `prepare_batch` per batch (texts: the tokenizer). Decoding and caching come before
augmentation, so a cached epoch still gets fresh augmentation. Labels are encoded by the task
type's `HeadSpec` (tltk/heads/): one-hot float32 [B, K] for classification (so label smoothing,
MixUp and CutMix work), multi-hot float32 [B, K] for multi-label, float32 [B] for regression.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from tltk.data.types import Split
from tltk.heads import get_head

if TYPE_CHECKING:
    from tltk.modalities.base import Preprocessor

BatchFn = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]

CACHE_CAP_BYTES = 2 * 1024**3
"""`cache: auto` keeps a decoded split in memory up to this size (and 1/4 of the RAM)."""
SHUFFLE_BUFFER_BYTES = 256 * 1024**2
"""A cached split is permuted in windows of decoded images; bound their memory, not length."""
WINDOW_EXAMPLES = 50_000
"""An uncached split (file paths, encoded bytes, texts) is permuted in windows this long."""


def build_pipeline(
    split: Split,
    *,
    num_classes: int,
    preprocessor: Preprocessor,
    batch_size: int,
    training: bool,
    seed: int,
    augment: BatchFn | None = None,
    cache: str = "auto",
    head_type: str = "classification",
    remainder: str = "keep",
    start_batch: int = 0,
) -> tf.data.Dataset:
    """Batches of `(inputs, labels)` from a split; deterministic given `seed`.

    Evaluation yields the split once, in its order. Training yields an endless stream of
    passes over the split, each shuffled by `(seed, pass number)` alone, so the batches of
    epoch E are the same whether a run got there in one go or was killed and resumed: give
    `start_batch` (passes x batches per pass, see `batches_per_pass`) to start mid-stream, and
    `steps_per_epoch` to `fit`.

    Args:
        split: examples of kind "path" (files, read first), "bytes" or "text": one of the
            preprocessor's `example_kinds`.
        num_classes: K, the width of one-hot / multi-hot labels.
        preprocessor: the modality's raw example -> model input (`decode` per example,
            `prepare_batch` per batch), the one the exported model applies too.
        head_type: the registered task type whose `label_array` and `encode_label` turn the
            split's labels into what the loss takes.
        training: the endless shuffled stream above; evaluation keeps the split's order.
        augment: `(images, labels) -> (images, labels)` on each batch, on the CPU, after the
            cache (e.g. Keras augmentation layers, MixUp). Build layers outside this call.
        cache: "auto" (in memory when the decoded split fits, see `should_cache`), "memory" or
            "none"; never for a preprocessor whose `example_nbytes` is None (texts).
        remainder: what becomes of a last batch smaller than `batch_size`: "keep" it, "drop" it
            (training under several replicas: no replica ever gets an empty or ragged batch,
            and the training shuffle leaves out different examples each epoch), or "pad" it to
            `batch_size` with blank examples at the end (evaluation under several replicas:
            predictions are then sliced back to the split's length).
    """
    if remainder not in ("keep", "drop", "pad"):
        raise ValueError(f"remainder must be keep, drop or pad, not {remainder!r}")
    if cache not in ("auto", "memory", "none"):
        raise ValueError(f"cache must be auto, memory or none, not {cache!r}")
    if split.kind not in preprocessor.example_kinds:
        raise ValueError(
            f"a split of kind {split.kind!r}, but the {preprocessor.kind} preprocessor reads "
            f"{', '.join(preprocessor.example_kinds)}"
        )
    n, nbytes = len(split), preprocessor.example_nbytes
    head = get_head(head_type)
    ds = tf.data.Dataset.from_tensor_slices((_examples(split), head.label_array(split.labels)))
    read = tf.io.read_file if split.kind == "path" else (lambda raw: raw)

    def prepare(example, label):
        return preprocessor.decode(read(example)), head.encode_label(label, num_classes)

    cached = nbytes is not None and (
        cache == "memory" or (cache == "auto" and should_cache(n, nbytes))
    )
    if training:
        per_pass = batches_per_pass(n, batch_size, remainder)
        if not per_pass:
            raise ValueError(
                f"a training split of {n} examples makes no whole batch of {batch_size}"
            )
        ds = _training_stream(ds, prepare, n, nbytes, batch_size, seed, cached, remainder)
        ds = ds(start_batch // per_pass).skip(start_batch % per_pass)
    else:
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        ds = (ds.cache() if cached else ds).batch(batch_size)
        if remainder == "pad":
            ds = ds.map(lambda x, y: (_pad_batch(x, batch_size), _pad_batch(y, batch_size)))
    if preprocessor.prepare_batch is not None:
        to_inputs = preprocessor.prepare_batch
        ds = ds.map(lambda x, y: (to_inputs(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.with_options(sharding_options()).prefetch(tf.data.AUTOTUNE)


def sharding_options(policy: str = "DATA") -> tf.data.Options:
    """How several workers split the stream (tf.distribute's auto-sharding), said explicitly.

    DATA: every worker runs the whole pipeline and keeps its share of each global batch, which
    is right for a split held as a list of examples (paths, bytes, texts) and keeps every
    worker's batches in step with the single-process stream. FILE (each worker reads its own
    files) is for sources sharded into files; TensorFlow's default, AUTO, would try FILE first
    and fall back to DATA with a warning.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy
    )
    return options


def predict_unpadded(model, ds: tf.data.Dataset, num_examples: int) -> np.ndarray:
    """`model.predict` over an evaluation `ds`, without the blanks of a padded last batch."""
    return model.predict(ds, verbose=0)[:num_examples]


def _pad_batch(tensor: tf.Tensor, batch_size: int) -> tf.Tensor:
    """Append blank rows (zeros, or empty strings) up to a static batch of `batch_size`."""
    missing = batch_size - tf.shape(tensor)[0]
    paddings = [[0, missing]] + [[0, 0]] * (len(tensor.shape) - 1)
    blank = "" if tensor.dtype == tf.string else 0
    padded = tf.pad(tensor, paddings, constant_values=blank)
    return tf.ensure_shape(padded, [batch_size, *tensor.shape[1:]])


def batches_per_pass(num_examples: int, batch_size: int, remainder: str = "keep") -> int:
    """How many batches one training pass over `num_examples` yields."""
    if remainder == "drop":
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def _training_stream(ds, prepare, n, example_nbytes, batch_size, seed, cached, remainder):
    """`first -> passes first, first+1, ...`; pass p is the split permuted by the stateless
    seed (seed, p), then batched.

    Stateless permutations (not `Dataset.shuffle`, whose per-iteration seeds depend on how
    often the dataset was iterated, and whose tensor seeds fail under a global seed of 0) make
    pass p the same in any process. The split is permuted in windows: the whole split when its
    (decoded) examples fit in SHUFFLE_BUFFER_BYTES, as almost every cached split does.
    """
    drop = remainder == "drop"
    if cached:
        # The cache keeps one decoded order (a fixed shuffle, so that windows mix classes);
        # every pass permutes what it replays, and all passes share the one cache.
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
        window = max(batch_size, SHUFFLE_BUFFER_BYTES // example_nbytes)
    else:
        window = WINDOW_EXAMPLES

    def one_pass(p):
        passed = _permute_windows(ds, min(max(n, 1), window), seed, p)
        if not cached:
            passed = passed.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return passed.batch(batch_size, drop_remainder=drop)

    return lambda first: tf.data.Dataset.range(first, 2**62).flat_map(one_pass)


def _permute_windows(ds: tf.data.Dataset, window: int, seed: int, p) -> tf.data.Dataset:
    """`ds` in windows of `window` examples, each permuted by the seed (seed, p, window #)."""

    def permute(w, batch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(batch[0])[0]), seed=tf.stack([p * 1_000_003 + w, seed])
        )
        return tuple(tf.gather(t, order) for t in batch)

    return ds.batch(window).enumerate().map(permute).unbatch()


def should_cache(num_examples: int, example_nbytes: int | None) -> bool:
    """`cache: auto`: does the decoded split (`example_nbytes` each) fit in
    min(RAM / 4, CACHE_CAP_BYTES)?"""
    if not example_nbytes:
        return False
    return num_examples * example_nbytes <= min(memory_bytes() // 4, CACHE_CAP_BYTES)


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
