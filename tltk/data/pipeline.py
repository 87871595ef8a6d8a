"""The one tf.data pipeline builder: a `Split` -> batches of (inputs, labels) for Keras.

    from_tensor_slices | records stream -> [train: permuted per pass] -> [read files]
    -> parallel decode -> [cache -> train: permute the decoded examples again, since a cache
    replays one order] -> batch [drop or pad the remainder] -> prepare_batch -> augment
    -> prefetch

A split held in memory (paths, bytes, texts) starts from `from_tensor_slices`. A streamed split
(kind "records": TFRecord shards, a tfds split) starts from its `Records.dataset`: evaluation
reads the records in their one fixed order; each training pass reads its files in an order
permuted by (seed, pass) and permutes windows of `shuffle_buffer` records, so memory holds a
window or two of encoded examples, never the split. The order of the passes is
tltk/data/passes.py's. Its labels stay in memory (tiny next to the
examples) and are gathered by record id, so relabelling and splitting never touch the files.

What an example becomes is the modality's `Preprocessor` (tltk/modalities/): its `decode` per
example (images: float32 [S, S, 3] in 0..255 by `decode_image`, as in the exported model) and
its `prepare_batch` per batch (texts: the tokenizer). Decoding and caching come before
augmentation, so a cached epoch still gets fresh augmentation. Labels are encoded by the task
type's `HeadSpec` (tltk/heads/): one-hot float32 [B, K] for classification (so label smoothing,
MixUp and CutMix work), multi-hot float32 [B, K] for multi-label, float32 [B] for regression.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from tltk.data.passes import WINDOW_EXAMPLES, StreamOrder, stream_order, training_stream
from tltk.data.record_stream import record_lookup, record_stream
from tltk.data.types import Split
from tltk.heads import get_head

if TYPE_CHECKING:
    from tltk.modalities.base import Preprocessor

BatchFn = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]

RECORD_WINDOW_BYTES = 128 * 1024**2
"""A streamed split's default shuffle window: as many records as fill this (encoded), at most
WINDOW_EXAMPLES. Two windows can be in memory at once (one filling while one is consumed)."""


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
    shuffle_buffer: int | None = None,
) -> tf.data.Dataset:
    """Batches of `(inputs, labels)` from a split; deterministic given `seed`.

    Evaluation yields the split once, in its order. Training yields an endless stream of
    passes over the split, each shuffled by `(seed, pass number)` alone, so the batches of
    epoch E are the same whether a run got there in one go or was killed and resumed: give
    `start_batch` (passes x batches per pass, see `passes.batches_per_pass`) to start
    mid-stream, and `steps_per_epoch` to `fit`.

    Args:
        split: examples of kind "path" (files, read first), "bytes" or "text": one of the
            preprocessor's `example_kinds`; or "records" whose records hold one of those.
        num_classes: K, the width of one-hot / multi-hot labels.
        preprocessor: the modality's raw example -> model input (`decode` per example,
            `prepare_batch` per batch), the one the exported model applies too.
        head_type: the registered task type whose `label_array` and `encode_label` turn the
            split's labels into what the loss takes.
        training: the endless shuffled stream above; evaluation keeps the split's order.
        augment: `(images, labels) -> (images, labels)` on each batch, on the CPU, after the
            cache (e.g. Keras augmentation layers, MixUp). Build layers outside this call.
        cache: "auto" (in memory when the decoded split fits, see `passes.should_cache`),
            "memory" or "none"; never for a preprocessor whose `example_nbytes` is None (texts).
        remainder: what becomes of a last batch smaller than `batch_size`: "keep" it, "drop" it
            (training under several replicas: no replica ever gets an empty or ragged batch,
            and the training shuffle leaves out different examples each epoch), or "pad" it to
            `batch_size` with blank examples at the end (evaluation under several replicas:
            predictions are then sliced back to the split's length).
        shuffle_buffer: a streamed split's shuffle window in records (the memory/quality
            trade-off: a window holds that many encoded examples); None: `record_window`.
    """
    if remainder not in ("keep", "drop", "pad"):
        raise ValueError(f"remainder must be keep, drop or pad, not {remainder!r}")
    if cache not in ("auto", "memory", "none"):
        raise ValueError(f"cache must be auto, memory or none, not {cache!r}")
    kind = split.records.example_kind if split.streamed else split.kind
    if kind not in preprocessor.example_kinds:
        raise ValueError(
            f"a split of kind {kind!r}, but the {preprocessor.kind} preprocessor reads "
            f"{', '.join(preprocessor.example_kinds)}"
        )
    n, nbytes = len(split), preprocessor.example_nbytes
    head = get_head(head_type)
    labels = head.label_array(split.labels)
    source, window, passes = _source(split, labels, batch_size, shuffle_buffer)
    read = _reader(split)

    def prepare(example, label):
        return preprocessor.decode(read(example)), head.encode_label(label, num_classes)

    order = stream_order(n, nbytes, cache, batch_size)
    if training:
        if not order.cached:  # a streamed split's window (in memory: the whole split)
            order = StreamOrder(False, window)
        # A streamed split read afresh every pass never needs its stream in split order; one
        # held in memory streams (index, label) made from its labels.
        in_memory = not split.streamed
        ds = None if in_memory or (passes is not None and not order.cached) else source()
        ds = training_stream(
            ds, prepare, n, order, batch_size, seed, remainder, start_batch, passes=passes,
            labels=labels if in_memory else None,
        )  # fmt: skip
    else:
        ds = source()
        if split.streamed:  # a stream's length is unknown to tf.data (Keras' predict then
            # warns that its input "ran out of data"); the split knows it
            ds = ds.apply(tf.data.experimental.assert_cardinality(n))
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        ds = _batches(ds.cache() if order.cached else ds, batch_size, remainder)
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
    and fall back to DATA with a warning. Streamed splits (TFRecord shards) keep DATA too: it
    costs every worker a read of every shard, but keeps the (seed, epoch) order resume needs.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy
    )
    return options


def _source(split: Split, labels: np.ndarray, batch_size: int, shuffle_buffer: int | None):
    """What makes (example, label) in the split's order, the training shuffle window, and for
    a streamed split the function that reads one training pass (None: passes permute the
    first). A streamed split's label lookup is made once, for every stream of it.

    A split held in memory streams (index, label): `_reader` gathers the example by its index,
    so a training pass permutes indices (the whole split, `passes.permuted_index`), never
    windows of paths or bytes."""
    if not split.streamed:
        index = np.arange(len(split), dtype=np.int64)
        return lambda: tf.data.Dataset.from_tensor_slices((index, labels)), max(len(split), 1), None
    lookup = record_lookup(split, labels)
    return (
        lambda: record_stream(split, None, lookup=lookup),  # the labels: in `lookup` only
        shuffle_buffer or record_window(split.records, batch_size),
        lambda pass_seed: record_stream(split, None, pass_seed, lookup),
    )


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


def build_feature_pipeline(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    batch_size: int,
    training: bool,
    seed: int,
    order: StreamOrder,
    head_type: str = "classification",
    remainder: str = "keep",
    start_batch: int = 0,
) -> tf.data.Dataset:
    """Batches of `(features, labels)` from one split's cached backbone features [N, C] (in
    memory, or a read-only `np.memmap` on disk), in split order.

    The examples are the rows' indices, streamed exactly as `build_pipeline` streams the split
    itself (`order` from `stream_order`), and each batch's rows are gathered after batching:
    a cached head phase sees the batches its uncached twin would, and a split on disk is read
    a batch at a time, never loaded whole.
    """
    n, head = len(features), get_head(head_type)
    labels = head.label_array(labels)

    def prepare(i, label):
        return i, head.encode_label(label, num_classes)

    if training:
        ds = training_stream(
            None, prepare, n, order, batch_size, seed, remainder, start_batch, labels=labels
        )
    else:
        index = np.arange(n, dtype=np.int64)
        ds = _batches(tf.data.Dataset.from_tensor_slices((index, labels)).map(prepare),
                      batch_size, remainder)  # fmt: skip
    width = features.shape[1]

    def gather(rows):
        out = tf.numpy_function(lambda r: np.asarray(features[r], np.float32), [rows], tf.float32)
        return tf.ensure_shape(out, [None, width])

    return ds.map(lambda i, y: (gather(i), y)).prefetch(tf.data.AUTOTUNE)


def _batches(ds: tf.data.Dataset, batch_size: int, remainder: str) -> tf.data.Dataset:
    """An evaluation split in batches, the last padded to a whole batch under `pad`."""
    ds = ds.batch(batch_size)
    if remainder == "pad":
        ds = ds.map(lambda x, y: (_pad_batch(x, batch_size), _pad_batch(y, batch_size)))
    return ds


def record_window(records, batch_size: int) -> int:
    """The default shuffle window of a streamed split: RECORD_WINDOW_BYTES of its records (by
    their mean size), at least a batch, at most WINDOW_EXAMPLES."""
    fits = int(RECORD_WINDOW_BYTES // max(records.mean_bytes, 1.0))
    return max(batch_size, min(WINDOW_EXAMPLES, fits))


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


def _reader(split: Split) -> Callable[[tf.Tensor], tf.Tensor]:
    """An element of the split's stream -> the example's raw bytes or text: a streamed split's
    element is its record's example; an in-memory split's is an index into one tf.string
    tensor of the examples (a file path is read)."""
    if split.streamed:
        return lambda raw: raw
    examples = _examples(split)
    if split.kind == "path":
        return lambda i: tf.io.read_file(tf.gather(examples, i))
    return lambda i: tf.gather(examples, i)


def _examples(split: Split) -> tf.Tensor:
    # An explicit tf.string constant: works for str and bytes alike, and for an empty split.
    return tf.constant([x if isinstance(x, bytes) else str(x) for x in split.examples], tf.string)
