"""TensorFlow Datasets image sets (tf_flowers, cifar10, ...), read as encoded bytes."""

from __future__ import annotations

import io

import numpy as np

from tltk.data.errors import DataError
from tltk.data.labels import one_hot
from tltk.data.sources.tfds_builder import (
    prepared_tfds_builder,
    tfds_class_names,
    tfds_description,
    tfds_splits,
)
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig


def read_tfds(cfg: DataConfig, label_kind: str) -> SourceData:
    """The image dataset `cfg.name`, as encoded bytes (decoded later, in tf.data)."""
    import tensorflow_datasets as tfds

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
        ds = builder.as_dataset(split=tfds_split, decoders={image_key: tfds.decode.SkipDecoding()})
        images, ids = [], []
        for batch in ds.batch(1024).as_numpy_iterator():
            images.extend(_as_encoded(batch[image_key]))
            ids.append(batch[label_key])
        ids = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
        labels = one_hot(ids, len(class_names)) if label_kind == "classes" else ids
        origins = [f"tfds:{cfg.name}/{tfds_split}[{i}]" for i in range(len(images))]
        out[split] = Split(np.array(images, dtype=object), labels, "bytes", origins)
    return SourceData(class_names, out, tfds_description(cfg, builder))


def _as_encoded(images: np.ndarray) -> list[bytes]:
    """Encoded bytes as they are; decoded uint8 arrays (some builders, some mocks) -> PNG."""
    if images.dtype == object or images.dtype.kind == "S":
        return [bytes(x) for x in images]
    from PIL import Image

    out = []
    for array in images:
        buffer = io.BytesIO()
        Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out
