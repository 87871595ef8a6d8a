"""TensorFlow Datasets text classification sets (imdb_reviews, ag_news_subset, ...)."""

from __future__ import annotations

import numpy as np

from tltk.data.errors import DataError
from tltk.data.sources.tfds_builder import (
    prepared_tfds_builder,
    tfds_class_names,
    tfds_description,
    tfds_splits,
)
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig


def read_tfds_text(cfg: DataConfig, label_kind: str) -> SourceData:
    """The text dataset `cfg.name`, single-label.

    Bytes that are not UTF-8 are replaced (origins in `found["bad_encoding"]`); empty texts are
    dropped (`found["dropped"]`).
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
        texts, ids, origins = [], [], []
        ds = builder.as_dataset(split=tfds_split, as_supervised=True)
        for i, (raw, label) in enumerate(ds.as_numpy_iterator()):
            origin = f"tfds:{cfg.name}/{tfds_split}[{i}]"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                bad.append(origin)
            if not text.strip():
                dropped.append({"origin": origin, "reason": "empty text"})
                continue
            texts.append(text.strip())
            ids.append(int(label))
            origins.append(origin)
        labels = np.array(ids, dtype=np.int64)
        splits[split] = Split(np.array(texts, dtype=object), labels, "text", origins)
    found = {"dropped": dropped, "bad_encoding": bad}
    return SourceData(class_names, splits, tfds_description(cfg, builder), found)
