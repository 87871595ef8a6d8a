"""TensorFlow Datasets image sets (tf_flowers, cifar10, imagenet2012, ...), streamed.

Each tfds split is a `TfdsRecords` stream that tf.data reads through `builder.as_dataset`
(images as encoded bytes, decoded in the pipeline); Python holds only what one pass over it
gave: the labels and a fingerprint of each image, for splitting and the duplicate checks.
"""

from __future__ import annotations

import numpy as np

from tltk.data.errors import DataError
from tltk.data.labels import one_hot
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


def read_tfds(cfg: DataConfig, label_kind: str) -> SourceData:
    """The image dataset `cfg.name`, one records split per tfds split (see the module)."""
    if not cfg.name:
        raise DataError("data.name is required for data.source tfds (e.g. tf_flowers)")
    if label_kind == "value":
        raise DataError("data.source tfds gives class labels; regression needs a csv manifest")
    builder = prepared_tfds_builder(
        cfg, instead="export the images to class folders and use data.source: folder"
    )
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    class_names = tfds_class_names(cfg, builder, label_key)
    out = {}
    for split, tfds_split in tfds_splits(cfg, builder).items():
        records = TfdsRecords(builder, tfds_split, image_key, "bytes")
        ids = scan_split(records, label_key)["labels"]
        labels = one_hot(ids, len(class_names)) if label_kind == "classes" else ids
        out[split] = Split(np.arange(len(ids)), labels, "records", records=records)
    return SourceData(class_names, out, tfds_description(cfg, builder))
