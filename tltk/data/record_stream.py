"""A streamed split (kind "records") as tf.data (example, label) pairs: the records of its
stream, those of other splits filtered out, each label gathered by record id.

The labels (and, for a split that holds part of its stream, each record's position in it) stay
in memory, so relabelling and splitting never touch the files. They reach tf.data as tensors
made once per pipeline, in the smallest integer type that holds them (class ids: one byte
each), and captured by the pipeline's functions rather than built inside them: a constant
built inside a traced function is a copy in every function that holds it, which for a million
int64 labels cost ~85 MB after `build_pipeline` (benchmarks/bench_data_memory.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tltk.data.types import Split


@dataclass(frozen=True)
class RecordLookup:
    """What a record's id becomes in one split: its label, and its position (or -1)."""

    labels: tf.Tensor
    """The split's labels, stored compactly (`compact_labels`)."""
    dtype: tf.DType
    """The labels' dtype as the pipeline hands them on (int64 ids, float32 rows or values)."""
    position: tf.Tensor | None
    """record id -> position in the split, -1 for other splits' records; None for a split
    that holds its whole stream (the id is the position)."""


def record_lookup(split: Split, labels: np.ndarray) -> RecordLookup:
    """The lookup tensors of `split` with `labels` (aligned with it), made once, eagerly."""
    labels = np.asarray(labels)
    position = None
    if not split.whole:
        dtype = np.int32 if len(split) < 2**31 else np.int64
        table = np.full(split.records.total, -1, dtype=dtype)
        table[split.examples] = np.arange(len(split), dtype=dtype)
        position = tf.constant(table)
    stored = tf.constant(compact_labels(labels))
    return RecordLookup(stored, tf.as_dtype(labels.dtype), position)


def record_stream(
    split: Split, labels: np.ndarray | None, pass_seed=None, lookup: RecordLookup | None = None
) -> tf.data.Dataset:
    """(example, label) of a records split: its stream (`Records.dataset(pass_seed)`), other
    splits' records filtered out, labels gathered by record id (`lookup`: made once by the
    caller for several streams of one split; else here)."""
    lookup = lookup or record_lookup(split, labels)
    ds = split.records.dataset(pass_seed)

    def label(i):
        return tf.cast(tf.gather(lookup.labels, i), lookup.dtype)

    if lookup.position is None:
        return ds.map(lambda gid, raw: (raw, label(gid)))
    ds = ds.map(lambda gid, raw: (tf.gather(lookup.position, gid), raw))
    ds = ds.filter(lambda i, raw: i >= 0)
    return ds.map(lambda i, raw: (raw, label(i)))


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """`labels` in the smallest integer type that holds them exactly: class ids and 0/1
    multi-hot rows (uint8 for up to 256 classes); anything else (regression values) as is."""
    labels = np.asarray(labels)
    whole = np.issubdtype(labels.dtype, np.integer)
    if not whole and labels.size and np.issubdtype(labels.dtype, np.floating):
        whole = bool(np.all((labels == 0) | (labels == 1)))
    if not whole or not labels.size:
        return labels
    low, high = labels.min(), labels.max()
    for dtype in (np.uint8, np.int16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return labels.astype(dtype)
    return labels
