"""A streamed split's labels in tf.data (tltk/data/record_stream.py): stored compactly, handed
on in their own dtype, gathered by record id."""

from __future__ import annotations

import numpy as np
from test_data_records import records_split, write_records

from tltk.data.record_stream import compact_labels, record_lookup, record_stream


def test_labels_are_stored_in_the_smallest_type_that_holds_them():
    assert compact_labels(np.array([0, 3, 255])).dtype == np.uint8
    assert compact_labels(np.array([0, 300])).dtype == np.int16
    assert compact_labels(np.array([-1, 70_000])).dtype == np.int32
    multi_hot = np.array([[0, 1], [1, 1]], np.float32)
    assert compact_labels(multi_hot).dtype == np.uint8
    values = np.array([0.5, 2.0], np.float32)  # regression: as they are
    assert compact_labels(values) is values
    assert compact_labels(np.zeros(0, np.int64)).dtype == np.int64


def test_a_part_of_a_stream_gets_its_own_labels_in_their_dtype(tmp_path):
    records = write_records(tmp_path / "r", 9, per_file=4)
    split = records_split(records, [1, 4, 8])
    labels = np.array([7, 300, 2], np.int64)  # not the files' labels: the split's own
    lookup = record_lookup(split, labels)
    assert lookup.labels.dtype.name == "int16" and lookup.position is not None
    got = [
        (raw[:4], int(y))
        for raw, y in record_stream(split, None, lookup=lookup).as_numpy_iterator()
    ]
    assert [y for _, y in got] == [7, 300, 2]
    multi_hot = np.eye(3, dtype=np.float32)
    rows = [y for _, y in record_stream(split, multi_hot).as_numpy_iterator()]
    assert all(r.dtype == np.float32 for r in rows) and np.array_equal(np.stack(rows), multi_hot)
