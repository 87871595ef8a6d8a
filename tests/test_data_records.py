"""Streamed splits (kind "records"): TFRecord files read by tf.data, never held in memory.

The training stream of a streamed split must be what an in-memory one is: every example once a
pass, a new order every pass, and pass p a function of (seed, p) alone, in any process, so a
resumed run gets the batches an uninterrupted one would.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tltk.data import Split, build_pipeline
from tltk.data.pipeline import record_window
from tltk.data.records import TFRecordFiles, example_proto, scan_records
from tltk.modalities.image import ImagePreprocessor
from tltk.modalities.text import TextModality

PIXELS_4 = ImagePreprocessor(4)


def write_records(folder, n: int, per_file: int, *, text: bool = False) -> TFRecordFiles:
    """`n` records in files of `per_file`: example i is a 4x4 PNG of gray level i (or the
    text "example i"), label i % 3. Pixels (or words) identify the example."""
    folder.mkdir(parents=True, exist_ok=True)
    files, counts = [], []
    for start in range(0, n, per_file):
        path = folder / f"part-{start // per_file:03d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(start, min(n, start + per_file)):
                if text:
                    example = f"example {i}"
                else:
                    example = tf.io.encode_png(tf.fill([4, 4, 3], tf.constant(i, tf.uint8)))
                    example = example.numpy()
                writer.write(example_proto(example, i % 3, "class", f"item{i}"))
        files.append(path)
        counts.append(min(n, start + per_file) - start)
    return TFRecordFiles(files, counts, example_kind="text" if text else "bytes")


def records_split(records: TFRecordFiles, ids=None) -> Split:
    ids = np.arange(records.total) if ids is None else np.asarray(ids)
    return Split(ids, ids % 3, "records", records=records)


def passes(split, *, seed=0, n_passes=3, start_batch=0, batch_size=4, shuffle_buffer=5):
    """The example ids (gray levels) of `n_passes` training passes."""
    ds = build_pipeline(
        split, num_classes=3, preprocessor=PIXELS_4, batch_size=batch_size, training=True,
        seed=seed, cache="none", start_batch=start_batch, shuffle_buffer=shuffle_buffer,
    )  # fmt: skip
    per_pass = -(-len(split) // batch_size)
    ids, labels = [], []
    for x, y in ds.take(n_passes * per_pass):
        ids += x.numpy()[:, 0, 0, 0].round().astype(int).tolist()
        labels += y.numpy().argmax(1).tolist()
    assert [i % 3 for i in ids] == labels  # every label travels with its example
    n = len(split)
    return [ids[p * n : (p + 1) * n] for p in range(n_passes)]


def test_evaluation_streams_the_records_in_order_with_their_labels(tmp_path):
    records = write_records(tmp_path / "r", 11, per_file=4)
    assert records.total == 11 and records.counts == [4, 4, 3]
    assert records.origin(5) == "part-001.tfrecord[1]"
    split = records_split(records)
    ds = build_pipeline(
        split, num_classes=3, preprocessor=PIXELS_4, batch_size=4, training=False, seed=0
    )
    assert ds.cardinality() == 3  # known, so Keras' predict knows when the stream ends
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    assert [len(x) for x in xs] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(xs)[:, 0, 0, 0], np.arange(11))
    np.testing.assert_array_equal(np.concatenate(ys), np.eye(3)[np.arange(11) % 3])
    assert split.raw_examples(2)[1] == records.read(np.array([1]))[0]  # the record itself
    assert split.raw_examples(2)[1][:4] == b"\x89PNG"


def test_a_subset_streams_only_its_records_with_its_own_labels(tmp_path):
    records = write_records(tmp_path / "r", 12, per_file=5)
    ids = np.array([1, 2, 5, 9, 11])
    split = Split(ids, np.array([2, 2, 0, 1, 1]), "records", records=records)  # relabelled
    ds = build_pipeline(
        split, num_classes=3, preprocessor=PIXELS_4, batch_size=2, training=False, seed=0
    )
    pairs = [
        (int(x[0, 0, 0]), int(y.argmax()))
        for xb, yb in ds.as_numpy_iterator()
        for x, y in zip(xb, yb, strict=True)
    ]
    assert pairs == [(1, 2), (2, 2), (5, 0), (9, 1), (11, 1)]  # the split's labels, not 3 % i
    assert split.subset([1, 3]).examples.tolist() == [2, 9]
    with pytest.raises(ValueError, match="increasing"):
        split.subset([3, 1])


def test_training_passes_cover_every_record_reshuffled_and_resume_exactly(tmp_path):
    split = records_split(write_records(tmp_path / "r", 30, per_file=7))
    first = passes(split, seed=3)
    assert all(sorted(p) == list(range(30)) for p in first)  # every record once a pass
    assert first[0] != first[1] != first[2]  # a new order every pass
    assert first == passes(split, seed=3)  # the same seed, the same passes
    assert passes(split, seed=4) != first
    # A stream started at pass 1 (a run resumed after its first epoch) replays passes 1, 2.
    assert passes(split, seed=3, n_passes=2, start_batch=8) == first[1:]
    # Windows of 5 records, files read 8 at a time: the order mixes across files and windows.
    assert first[0][:5] != sorted(first[0][:5])


def test_training_order_is_the_same_in_another_process(tmp_path):
    split = records_split(write_records(tmp_path / "r", 20, per_file=6))
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); "
        "from test_data_records import passes, records_split; "
        "from tltk.data.records import TFRecordFiles; "
        f"r = TFRecordFiles({split.records.files!r}, {split.records.counts!r}, "
        "example_kind='bytes'); "
        "print(json.dumps(passes(records_split(r), seed=7, n_passes=2)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == passes(split, seed=7, n_passes=2)


def test_training_stream_of_records_under_a_global_seed_of_zero(tmp_path):
    import keras

    split = records_split(write_records(tmp_path / "r", 10, per_file=3))
    keras.utils.set_random_seed(0)
    try:
        got = passes(split, seed=0, n_passes=2)
    finally:
        keras.utils.set_random_seed(42)
    assert sorted(got[0]) == sorted(got[1]) == list(range(10))


def test_a_cached_streamed_split_reshuffles_what_it_replays(tmp_path):
    split = records_split(write_records(tmp_path / "r", 12, per_file=5))
    ds = build_pipeline(
        split, num_classes=3, preprocessor=PIXELS_4, batch_size=4, training=True, seed=1,
        cache="memory",
    )  # fmt: skip
    ids = [int(v) for x, _ in ds.take(9) for v in x.numpy()[:, 0, 0, 0].round()]
    epochs = [ids[i : i + 12] for i in range(0, 36, 12)]
    assert all(sorted(e) == list(range(12)) for e in epochs) and epochs[0] != epochs[1]


def test_the_shuffle_window_is_bounded_by_bytes_and_examples(tmp_path):
    records = write_records(tmp_path / "r", 10, per_file=10)
    assert records.mean_bytes > 50  # a PNG + label + origin per record
    assert record_window(records, 32) == 50_000  # small records: the example cap
    records.mean_bytes = 10 * 1024**2  # 10 MB records: 12 fit in 128 MB, yet a whole batch
    assert record_window(records, 32) == 32
    records.mean_bytes = 1024**2
    assert record_window(records, 32) == 128


def test_scan_gives_labels_hashes_and_text_problems(tmp_path):
    texts = [b"a cat", b"  ", b"a cat", b"caf\xe9 bytes", b"a dog"]
    ds = tf.data.Dataset.from_tensor_slices((texts, [0, 1, 0, 1, 1]))
    found = scan_records(ds, text=True, batch=2)
    assert found["labels"].tolist() == [0, 1, 0, 1, 1]
    assert found["sizes"].tolist() == [5, 2, 5, 10, 5]
    assert found["empty"].tolist() == [False, True, False, False, False]
    assert found["bad"].tolist() == [False, False, False, True, False]
    digests = found["digests"]
    assert digests.dtype == np.uint64 and digests[0] == digests[2] != digests[4]


def test_text_records_train_a_vocabulary_from_the_stream(tmp_path):
    split = records_split(write_records(tmp_path / "r", 9, per_file=4, text=True))
    from tltk.recipe import BackboneConfig

    cfg = BackboneConfig(name="text_rnn", weights=None, sequence_length=4, kwargs={"units": 4})
    backbone = TextModality().build_backbone(cfg, split)
    vocabulary = backbone.preprocessor.get_vocabulary()
    assert "example" in vocabulary and "8" in vocabulary  # every streamed text was seen
    assert TextModality().serving_examples(split, 2) == ["example 0", "example 1"]


def test_splits_csv_names_every_record_where_it_came_from(tmp_path, monkeypatch):
    import csv

    import tltk.data.report as report
    from tltk.data.types import LabelledData

    records = write_records(tmp_path / "r", 11, per_file=4)
    data = LabelledData(["a", "b", "c"], {"train": records_split(records, [0, 3, 4, 5, 9, 10])})
    monkeypatch.setattr(report, "SPLITS_CSV_BLOCK", 4)  # rows in blocks: two blocks here
    report.write_split_manifest(data, tmp_path / "splits.csv")
    rows = list(csv.reader((tmp_path / "splits.csv").open()))
    split = data.splits["train"]
    assert rows[0] == ["split", "example", "origin", "label"]
    assert rows[1:] == [["train", "", split.origin(i), "abc"[split.labels[i]]] for i in range(6)]
    assert rows[3][2] == "part-001.tfrecord[0]" and rows[-1][2] == "part-002.tfrecord[2]"
