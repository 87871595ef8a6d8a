"""TensorFlow Datasets builders, prepared without hanging offline, their splits, and a split as
a stream of records (`TfdsRecords`) that tf.data reads through `builder.as_dataset`.

A tfds split is never read into Python: one pass over it (`scan_split`, in tf.data) gives
what splitting and the checks need (the labels, a 64-bit fingerprint of each example, its
size; for texts whether it is empty or not UTF-8), and training and evaluation stream it again.
"""

from __future__ import annotations

import numpy as np

from tltk import net
from tltk.data.errors import DataError
from tltk.data.records import clean_text, scan_records
from tltk.data.splits import SPLIT_ALIASES, canonical_split
from tltk.data.types import Records
from tltk.recipe import DataConfig

DOWNLOAD_HOST = "storage.googleapis.com"
"""Where tfds downloads from: probed first, since without a network `download_and_prepare`
hangs for minutes before failing."""


def prepared_tfds_builder(cfg: DataConfig, *, instead: str):
    """The tfds builder of `cfg.name`, prepared: downloaded only when `data.download` allows and
    the network answers, so an offline machine fails at once rather than after minutes.

    `instead` ends the error message: what the user can do without tfds.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(cfg.name, data_dir=cfg.data_dir)
    except Exception as e:  # tfds raises several types for unknown names
        raise DataError(f"tfds dataset {cfg.name!r}: {e}") from None
    if builder.is_prepared():
        return builder
    how = (
        f"prepare it once on a machine with network (tfds.builder({cfg.name!r}, "
        f"data_dir={cfg.data_dir!r}).download_and_prepare()) and copy {builder.data_dir}, "
        f"or {instead}"
    )
    if not cfg.download:
        raise RuntimeError(
            f"tfds dataset {cfg.name!r} is not prepared in {builder.data_dir} and "
            f"data.download is false: {how}"
        )
    if not net.reachable(DOWNLOAD_HOST):
        raise RuntimeError(
            f"tfds dataset {cfg.name!r} is not prepared in {builder.data_dir} and "
            f"{DOWNLOAD_HOST} is unreachable (no network), so it cannot be downloaded: {how}"
        )
    builder.download_and_prepare()
    return builder


def tfds_splits(cfg: DataConfig, builder) -> dict[str, str]:
    """Canonical split -> tfds split: the recipe's `data.splits`, else the dataset's own
    train/validation/test (a dataset with only `train` gets split later)."""
    if cfg.splits:
        return {canonical_split(k, "data.splits"): v for k, v in cfg.splits.items()}
    wanted = {SPLIT_ALIASES[s]: s for s in builder.info.splits if s in SPLIT_ALIASES}
    return wanted or {"train": "train"}


def tfds_class_names(cfg: DataConfig, builder, label_key: str) -> list[str]:
    """The names of the dataset's class label; a DataError when the label is not a class."""
    names = [str(n) for n in getattr(builder.info.features[label_key], "names", None) or []]
    if not names:
        raise DataError(f"tfds dataset {cfg.name!r}: label {label_key!r} is not a class label")
    return names


def tfds_description(cfg: DataConfig, builder) -> dict:
    return {"type": "tfds", "name": cfg.name, "data_dir": str(builder.data_dir)}


class TfdsRecords(Records):
    """One tfds split as records: gid = position in `as_dataset(shuffle_files=False)`, the
    deterministic order tfds reads its files in.

    Every pass reads that same order (tfds shuffled the examples when it prepared the files;
    a pass seed cannot reorder `as_dataset`'s files inside tf.data): training passes differ by
    their window permutations only. Shards (`tltk data shard`) also shuffle the file order.
    Images come as encoded bytes (`tfds.decode.SkipDecoding`); a builder whose images are
    plain uint8 tensors gets them PNG-encoded in the stream.
    """

    def __init__(self, builder, tfds_split: str, example_key: str, example_kind: str):
        self.builder, self.split, self.key = builder, tfds_split, example_key
        self.example_kind = example_kind
        self.label_key: str | None = None
        super().__init__(0, mean_bytes=0.0)

    def examples(self, with_labels: bool = False):
        """`as_dataset` mapped to its example string (and label)."""
        import tensorflow as tf
        import tensorflow_datasets as tfds

        decoders = {self.key: tfds.decode.SkipDecoding()} if self.example_kind == "bytes" else None
        ds = self.builder.as_dataset(split=self.split, shuffle_files=False, decoders=decoders)
        key, label_key = self.key, self.label_key

        def pick(features):
            example = features[key]
            if example.dtype != tf.string:  # decoded pixels: encode them once, losslessly
                example = tf.io.encode_png(tf.cast(example, tf.uint8))
            return (example, features[label_key]) if with_labels else example

        return ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE)

    def dataset(self, pass_seed=None):
        import tensorflow as tf

        ds = self.examples().enumerate()
        if self.example_kind == "text":  # as the scan judged it: U+FFFD for bad bytes, stripped
            ds = ds.map(lambda gid, t: (gid, clean_text(t)), num_parallel_calls=tf.data.AUTOTUNE)
        return ds

    def origin(self, gid: int) -> str:
        return f"tfds:{self.builder.name}/{self.split}[{gid}]"

    def describe(self) -> dict:
        return {"records": self.total, "tfds_split": self.split}


def scan_split(records: TfdsRecords, label_key: str) -> dict[str, np.ndarray]:
    """One tf.data pass over a split (`scan_records`); sets the records' total, mean size and
    digests."""
    records.label_key = label_key
    found = scan_records(records.examples(with_labels=True), text=records.example_kind == "text")
    found["labels"] = found["labels"].astype(np.int64)
    records.total = len(found["labels"])
    records.mean_bytes = float(found["sizes"].mean()) if records.total else 0.0
    records.digests = found["digests"]
    return found
