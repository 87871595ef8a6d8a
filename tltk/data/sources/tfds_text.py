"""TensorFlow Datasets text classification sets (imdb_reviews, ag_news_subset, ...), streamed
like the image sets (`TfdsRecords`): the texts stay in tfds's files."""

from __future__ import annotations

import numpy as np

from tltk.data.errors import DataError
from tltk.data.sources.tfds_builder import (
    TfdsRecords,
    prepared_tfds_builder,
    scan_split,
    tfds_class_names,
    tfds_description,
    tfds_splits,
)
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig


def read_tfds_text(cfg: DataConfig, label_kind: str) -> SourceData:
    """The text dataset `cfg.name`, single-label.

    Bytes that are not UTF-8 are replaced in the stream (origins in `found["bad_encoding"]`);
    empty texts are left out of the split (`found["dropped"]`).
    """
    if not cfg.name:
        raise DataError("data.name is required for data.source tfds (e.g. imdb_reviews)")
    if label_kind != "class":
        raise DataError("data.source tfds: text sets are read as single-label classification")
    builder = prepared_tfds_builder(
        cfg, instead="write the texts to a CSV and use data.source: text"
    )
    text_key, label_key = builder.info.supervised_keys or ("text", "label")
    class_names = tfds_class_names(cfg, builder, label_key)
    splits, dropped, bad = {}, [], []
    for split, tfds_split in tfds_splits(cfg, builder).items():
        records = TfdsRecords(builder, tfds_split, text_key, "text")
        scan = scan_split(records, label_key)
        bad += [records.origin(int(g)) for g in np.flatnonzero(scan["bad"])]
        dropped += [
            {"origin": records.origin(int(g)), "reason": "empty text"}
            for g in np.flatnonzero(scan["empty"])
        ]
        kept = np.flatnonzero(~scan["empty"])
        splits[split] = Split(kept, scan["labels"][kept], "records", records=records)
    found = {"dropped": dropped, "bad_encoding": bad}
    return SourceData(class_names, splits, tfds_description(cfg, builder), found)
