"""TFRecord files of `tf.train.Example`s: what `tltk data shard` writes and the `tfrecord` source
reads, streamed by tf.data and never held in memory.

One record is one example: its encoded image bytes (feature `image`) or its UTF-8 text
(`text`), its label (`label`: the class id, the ids of its classes, or the regression value)
and where it came from (`origin`). `TFRecordFiles` is a `Records` stream over a list of such
files: a record's gid is its file's offset plus its position in the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tltk.data.types import Records

EXAMPLE_FEATURES = {"bytes": "image", "text": "text"}
"""The feature that holds the example, by `Records.example_kind`."""
LABEL_FEATURE = "label"
ORIGIN_FEATURE = "origin"
READ_CYCLE = 8
"""Files a training pass reads at once (interleaved, in parallel): enough to mix the classes
of neighbouring files and to keep the reads ahead of decoding."""
READ_BUFFER_BYTES = 1024**2
"""Read-ahead of each open file."""
SCAN_BATCH = 4096


class TFRecordFiles(Records):
    """Records in TFRecord files, `counts[i]` of them in `files[i]`.

    `dataset(None)` reads the files one after the other (gid order). A training pass
    (`dataset(pass_seed)`) reads them in an order permuted by `pass_seed`, READ_CYCLE files at
    a time, interleaved record by record (`deterministic=True`: the same order in any process,
    however the parallel reads finish).
    """

    def __init__(
        self,
        files: list[str | Path],
        counts: list[int],
        *,
        example_kind: str,
        example_feature: str | None = None,
        digests: np.ndarray | None = None,
    ):
        if len(files) != len(counts):
            raise ValueError("one record count per file")
        self.files = [str(f) for f in files]
        self.counts = [int(c) for c in counts]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        total = int(self.offsets[-1])
        size = sum(os.path.getsize(f) for f in self.files)
        super().__init__(total, mean_bytes=size / max(total, 1), digests=digests)
        self.example_kind = example_kind
        self.example_feature = example_feature or EXAMPLE_FEATURES[example_kind]

    def dataset(self, pass_seed: tf.Tensor | None = None) -> tf.data.Dataset:
        files = tf.constant(self.files, tf.string)
        offsets = tf.constant(self.offsets[:-1], tf.int64)
        order = tf.range(len(self.files), dtype=tf.int64)
        if pass_seed is not None:
            order = tf.random.experimental.stateless_shuffle(order, seed=pass_seed)
        feature = self.example_feature

        def read_file(k):
            records = tf.data.TFRecordDataset(files[k], buffer_size=READ_BUFFER_BYTES)
            return records.enumerate().map(lambda j, r: (offsets[k] + j, r))

        text = self.example_kind == "text"

        def parse(gid, record):
            spec = {feature: tf.io.FixedLenFeature([], tf.string)}
            example = tf.io.parse_single_example(record, spec)[feature]
            return gid, clean_text(example) if text else example

        ds = tf.data.Dataset.from_tensor_slices(order)
        if pass_seed is None:
            ds = ds.flat_map(read_file)
        else:
            ds = ds.interleave(
                read_file,
                cycle_length=min(len(self.files), READ_CYCLE),
                block_length=1,
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    def origin(self, gid: int) -> str:
        k = int(np.searchsorted(self.offsets, gid, side="right")) - 1
        return f"{Path(self.files[k]).name}[{gid - int(self.offsets[k])}]"

    def origins(self, gids: np.ndarray) -> list[str]:
        gids = np.asarray(gids, dtype=np.int64)
        k = np.searchsorted(self.offsets, gids, side="right") - 1
        names, within = [Path(f).name for f in self.files], (gids - self.offsets[k]).tolist()
        return [f"{names[f]}[{j}]" for f, j in zip(k.tolist(), within, strict=True)]

    def describe(self) -> dict:
        return {"records": self.total, "files": len(self.files)}


def example_proto(example: bytes | str, label, label_kind: str, origin: str) -> bytes:
    """One serialized `tf.train.Example`: the example, its label, its origin.

    `label` is a class id ("class"), a multi-hot row ("classes": the ids of its classes are
    stored) or a number ("value").
    """
    feature = tf.train.Feature
    data = example.encode("utf-8") if isinstance(example, str) else bytes(example)
    kind = "text" if isinstance(example, str) else "bytes"
    if label_kind == "value":
        label_feature = feature(float_list=tf.train.FloatList(value=[float(label)]))
    else:
        ids = np.flatnonzero(label) if label_kind == "classes" else [int(label)]
        label_feature = feature(int64_list=tf.train.Int64List(value=[int(i) for i in ids]))
    features = {
        EXAMPLE_FEATURES[kind]: feature(bytes_list=tf.train.BytesList(value=[data])),
        LABEL_FEATURE: label_feature,
        ORIGIN_FEATURE: feature(bytes_list=tf.train.BytesList(value=[origin.encode("utf-8")])),
    }
    example_pb = tf.train.Example(features=tf.train.Features(feature=features))
    return example_pb.SerializeToString()


def clean_text(texts: tf.Tensor) -> tf.Tensor:
    """Bytes that are not UTF-8 -> U+FFFD, surrounding spaces stripped (as text files are)."""
    return tf.strings.strip(_replace_bad_bytes(texts))


def _replace_bad_bytes(texts: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def scan_records(ds: tf.data.Dataset, *, text: bool, batch: int = SCAN_BATCH) -> dict:
    """One tf.data pass over (example, label) pairs: what splitting and the checks need,
    without any example reaching Python.

    An optional third element of each record (e.g. the index of its file) comes back as
    `files`. Returns numpy arrays aligned with the records: `labels` (as the dataset gives them; a
    ragged label gives `label_values` and `label_lengths` instead), `sizes` (bytes),
    `digests` (uint64 content hashes: 64-bit FarmHash fingerprints by `tf.fingerprint`, in
    C++), and for texts `bad` (bytes that are not UTF-8) and `empty` (nothing but spaces;
    the digest is the cleaned text's).
    """

    def measure(examples, labels, *files):
        out = {"sizes": tf.strings.length(examples)}
        if files:
            out["files"] = files[0]
        if isinstance(labels, tf.RaggedTensor):
            out.update(label_values=labels.values, label_lengths=labels.row_lengths())
        else:
            out["labels"] = labels
        if text:
            out["bad"] = _replace_bad_bytes(examples) != examples
            examples = clean_text(examples)
            out["empty"] = tf.strings.length(examples) == 0
        out["digests"] = tf.fingerprint(examples)
        return out

    ragged = ds.element_spec[1].shape.rank != 0  # a list per record (any number of labels)
    batched = ds.batch(batch) if not ragged else ds.ragged_batch(batch)
    parts: dict[str, list] = {}
    for block in batched.map(measure, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
        for key, value in block.items():
            parts.setdefault(key, []).append(value)
    found = {k: np.concatenate(v) for k, v in parts.items() if k != "digests"}
    none = {"sizes": np.int64, "labels": np.int64, "label_values": np.int64,
            "label_lengths": np.int64, "bad": bool, "empty": bool, "files": np.int64}  # fmt: skip
    wanted = ["sizes", *(["label_values", "label_lengths"] if ragged else ["labels"])]
    wanted += ["files"] if len(ds.element_spec) > 2 else []
    for key in wanted + (["bad", "empty"] if text else []):
        found.setdefault(key, np.zeros(0, none[key]))  # an empty dataset
    digests = parts.get("digests", [])
    found["digests"] = (
        np.ascontiguousarray(np.concatenate(digests)).view("<u8").ravel()
        if digests
        else np.zeros(0, dtype=np.uint64)
    )
    return found
