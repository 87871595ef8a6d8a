"""The order a training stream gives a split: an endless stream of passes, pass p permuted by
the stateless seed (seed, p) alone, in windows, so epoch E has the same batches in any process
and after any resume.

    [cached: one fixed seeded shuffle -> decode -> cache] -> pass p: [a streamed split reads
    its files in a (seed, p) order] -> windows, each permuted -> [decode] -> batch

`StreamOrder` (from `stream_order`) is what fixes the order; the split's own pipeline and its
cached backbone features (`build_feature_pipeline`) share it, so both yield the same batches.
The window is the memory/quality trade-off: a window of examples is held (two while the next
fills), and the first batch of a pass waits for its first window. A streamed split therefore
starts each pass with small windows that double up to the full one (`RAMP_WINDOWS`): its
first batch comes after a few hundred records instead of tens of thousands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

CACHE_CAP_BYTES = 2 * 1024**3
"""`cache: auto` keeps a decoded split in memory up to this size (and 1/4 of the RAM)."""
SHUFFLE_BUFFER_BYTES = 256 * 1024**2
"""A cached split is permuted in windows of decoded images; bound their memory, not length."""
WINDOW_EXAMPLES = 50_000
"""A streamed split (TFRecord shards, a tfds split) is permuted in windows at most this long."""
RAMP_WINDOWS = 64
"""A streamed pass's first window is 1/RAMP_WINDOWS of the full one (at least a batch); each
next one is twice as long until the full window (a ramp of about log2(64) = 6 windows)."""


@dataclass(frozen=True)
class StreamOrder:
    """How a training stream orders a split's examples (see `training_stream`).

    `stream_order` derives it from what the split's pipeline caches, so a stream of something
    else made from the same split (its cached backbone features, `build_feature_pipeline`)
    yields the very same batches.
    """

    cached: bool
    """The decoded split is cached: one fixed seeded shuffle, then every pass permutes it."""
    window: int
    """Each pass permutes the split in windows of this many examples."""


def stream_order(
    num_examples: int, example_nbytes: int | None, cache: str, batch_size: int
) -> StreamOrder:
    """The order `build_pipeline` gives a split of `num_examples` (`cache` as it takes it)."""
    cached = example_nbytes is not None and (
        cache == "memory" or (cache == "auto" and should_cache(num_examples, example_nbytes))
    )
    if cached:
        return StreamOrder(True, max(batch_size, SHUFFLE_BUFFER_BYTES // example_nbytes))
    # Uncached and in memory (paths, bytes, texts): each pass permutes the whole split's
    # indices (`permuted_index`; the pipeline gathers the example when it decodes it, so this
    # costs 4 bytes an example). Windows would keep the split's own order (a folder's is by
    # class) in every batch. A streamed split's window is the pipeline's.
    return StreamOrder(False, max(num_examples, 1))


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


def batches_per_pass(num_examples: int, batch_size: int, remainder: str = "keep") -> int:
    """How many batches one training pass over `num_examples` yields."""
    if remainder == "drop":
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def training_stream(
    ds, prepare, n, order, batch_size, seed, remainder, start_batch, passes=None, labels=None
):
    """Batches from `start_batch` on of the endless stream of passes 0, 1, ...; pass p is the
    split permuted by the stateless seed (seed, p), then batched.

    Stateless permutations (not `Dataset.shuffle`, whose per-iteration seeds depend on how
    often the dataset was iterated, and whose tensor seeds fail under a global seed of 0) make
    pass p the same in any process. A split held in memory gives its `labels` (`ds` is then
    None): its stream is (index into the split, label), and a pass that is not cached permutes
    the indices whole (`permuted_index`). A cached split is permuted in windows
    (`order.window`): the whole split when its decoded examples fit in SHUFFLE_BUFFER_BYTES, as
    almost every cached split does. A streamed split that is not cached reads each pass afresh
    from `passes(pass_seed)` (its files in a pass-seeded order; `ds` is then None) and permutes
    windows of records, ramped up from short ones (see the module).
    """
    per_pass = batches_per_pass(n, batch_size, remainder)
    if not per_pass:
        raise ValueError(f"a training split of {n} examples makes no whole batch of {batch_size}")
    drop = remainder == "drop"
    indexed = labels is not None and not order.cached
    if labels is not None:
        if order.cached:
            ds = tf.data.Dataset.from_tensor_slices((np.arange(n, dtype=np.int64), labels))
        labels = tf.constant(labels)
    if order.cached:
        # The cache keeps one decoded order (a fixed shuffle, so that windows mix classes);
        # every pass permutes what it replays, and all passes share the one cache.
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    streamed = passes is not None and not order.cached
    window = min(max(n, 1), order.window)
    # Only a stream read in a new order every pass ramps: a fixed order (a folder's, sorted by
    # class) would give every pass the same few examples first.
    first = max(batch_size, window // RAMP_WINDOWS) if streamed else window

    def one_pass(p):
        if indexed:
            passed = permuted_index(labels, seed, p)
        else:
            source = passes(tf.stack([-(p + 1), seed])) if streamed else ds
            passed = permute_windows(source, window, seed, p, first=first)
        if not order.cached:
            passed = passed.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return passed.batch(batch_size, drop_remainder=drop)

    stream = tf.data.Dataset.range(start_batch // per_pass, 2**62).flat_map(one_pass)
    return stream.skip(start_batch % per_pass)


def permuted_index(labels: tf.Tensor, seed: int, p) -> tf.data.Dataset:
    """(index, label) of every example of a split held in memory, the indices permuted by
    (seed, p): the order `permute_windows` gives one window of the whole split, made from one
    int32 [n] permutation (4 bytes an example) instead of a window of n tf.data elements (for
    a million examples, batching them took 16 s and ~350 MB)."""
    order = tf.random.experimental.stateless_shuffle(
        tf.range(tf.shape(labels)[0]), seed=tf.stack([p * 1_000_003, seed])
    )
    return tf.data.Dataset.from_tensor_slices(order).map(
        lambda i: (tf.cast(i, tf.int64), tf.gather(labels, i))
    )


def permute_windows(ds: tf.data.Dataset, window: int, seed: int, p, *, first: int | None = None):
    """`ds` in windows of `window` examples, each permuted by the seed (seed, p, window #);
    `first` < `window`: windows of `first`, 2 x `first`, 4 x ... examples before the full ones
    (each a whole number of `first`-example blocks)."""

    def permute(w, batch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(batch[0])[0]), seed=tf.stack([p * 1_000_003 + w, seed])
        )
        return tuple(tf.gather(t, order) for t in batch)

    if first is None or first >= window:
        windows = ds.batch(window).enumerate()
    else:
        windows = _ramped_windows(ds, window, first)
    # prefetch(1): the next window fills while this one is consumed, so a streamed pass does
    # not stall at every window boundary.
    return windows.map(permute).prefetch(1).unbatch()


def _ramped_windows(ds: tf.data.Dataset, window: int, first: int) -> tf.data.Dataset:
    """(window #, examples) of windows of 1, 2, 4 ... blocks of `first` examples, then of
    ceil(window / first) blocks: blocks are grouped (one key a block, not an example), so the
    ramp costs tf.data next to nothing per example."""
    full = -(-window // first)
    ramp = int(np.ceil(np.log2(full)))  # windows of 1, 2, ... 2**(ramp-1) blocks, all < full
    ramp_blocks = 2**ramp - 1
    ends = tf.constant(np.cumsum([2**w for w in range(ramp)]), tf.int64)

    def window_of(b, block):
        in_ramp = tf.searchsorted(ends, tf.reshape(b, [1]), side="right", out_type=tf.int64)[0]
        return tf.where(b < ramp_blocks, in_ramp, ramp + (b - ramp_blocks) // full)

    def blocks_in(w):
        return tf.where(w < ramp, tf.bitwise.left_shift(tf.constant(1, tf.int64), w), full)

    def whole(w, blocks):
        examples = blocks.map(lambda b, block: block).unbatch().batch(full * first)
        return examples.map(lambda *batch: (w, batch))

    return ds.batch(first).enumerate().group_by_window(window_of, whole, window_size_func=blocks_in)
