"""Data: sources (folder, CSV manifest, tfds, text files; `tltk.data.sources.SOURCES`), labels,
splits, cleaning, tf.data pipelines."""

from tltk.data.decode import decode_image, resize_image
from tltk.data.errors import DataError
from tltk.data.images import load_image_data
from tltk.data.pipeline import build_pipeline, class_weights
from tltk.data.types import LabelledData, SourceData, Split

__all__ = [
    "DataError",
    "LabelledData",
    "SourceData",
    "Split",
    "build_pipeline",
    "class_weights",
    "decode_image",
    "load_image_data",
    "resize_image",
]
