"""The training order (tltk/data/passes.py): windows permuted by (seed, pass, window), and the
ramp of a streamed pass, whose first windows are short so that its first batch comes soon."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tltk.data.passes import StreamOrder, permute_windows, permuted_index, training_stream


def _ids(ds) -> list[int]:
    return [int(i) for i, _ in ds.as_numpy_iterator()]


def _numbers(n: int) -> tf.data.Dataset:
    return tf.data.Dataset.range(n).map(lambda i: (i, 2 * i))


def test_a_ramp_permutes_windows_of_1_2_4_8_blocks_then_full_ones():
    got = _ids(permute_windows(_numbers(1000), 300, 1, tf.constant(0, tf.int64), first=20))
    assert sorted(got) == list(range(1000))  # every example once
    # Windows of 20, 40, 80, 160 examples (the ramp), then of 300 (15 blocks of 20).
    edges = [0, 20, 60, 140, 300, 600, 900, 1000]
    for start, stop in zip(edges, edges[1:], strict=False):
        assert sorted(got[start:stop]) == list(range(start, stop))
        assert got[start:stop] != list(range(start, stop))  # permuted inside the window
    again = _ids(permute_windows(_numbers(1000), 300, 1, tf.constant(0, tf.int64), first=20))
    assert again == got
    other_pass = _ids(permute_windows(_numbers(1000), 300, 1, tf.constant(1, tf.int64), first=20))
    assert other_pass != got and sorted(other_pass) == list(range(1000))


def test_without_a_ramp_the_first_window_is_the_full_one():
    got = _ids(permute_windows(_numbers(100), 60, 3, tf.constant(0, tf.int64)))
    assert sorted(got[:60]) == list(range(60)) and got[:60] != list(range(60))


def test_only_a_stream_read_afresh_each_pass_ramps():
    """A split held in memory keeps its full first window (its order is the same every pass,
    so a ramp would put the same examples first in every pass); a streamed one ramps."""
    n, batch = 256, 4
    order = StreamOrder(cached=False, window=256)

    def first_batch(**source) -> list[int]:
        ds = training_stream(None, lambda i, y: (i, y), n, order, batch, 0, "keep", 0, **source)
        return [int(i) for i in next(iter(ds))[0].numpy()]

    in_memory = first_batch(labels=2 * np.arange(n))
    streamed = first_batch(passes=lambda pass_seed: _numbers(n))
    assert max(streamed) < batch  # a window of 256 // 64 = 4 examples, then 8, 16, ...
    assert max(in_memory) >= batch  # drawn from all 256 (fails with chance 1 / C(256, 4))
    assert np.unique(in_memory).size == batch


def test_a_split_in_memory_is_permuted_like_one_window_of_all_of_it():
    """`permuted_index` (one permutation of the indices) gives the order `permute_windows`
    gives the whole split as one window, so splits of up to a window kept their batches."""
    labels = 3 * np.arange(1000)
    pass_2 = tf.constant(2, tf.int64)
    window = permute_windows(tf.data.Dataset.from_tensor_slices((np.arange(1000), labels)),
                             1000, 7, pass_2)  # fmt: skip
    got = [(int(i), int(y)) for i, y in permuted_index(tf.constant(labels), 7, pass_2)]
    assert got == [(int(i), int(y)) for i, y in window.as_numpy_iterator()]
    assert sorted(got) == [(i, 3 * i) for i in range(1000)] and got != sorted(got)
