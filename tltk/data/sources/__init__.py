"""Data sources: one reader per file, one contract, one registry (`SOURCES`).

A reader turns a recipe's `data` section into a `SourceData`:

    reader(cfg: DataConfig, label_kind: str) -> SourceData
        class_names   in label order
        splits        the splits the source itself defines (only `train` when it has none),
                      each a `Split` of examples (paths, encoded bytes or texts) and labels
        description   the report's `source` entry
        found         what the reader's own checks found (ignored, missing, dropped rows ...)

`label_kind` is the head spec's: "class", "classes" (multi-label) or "value" (regression); a
reader parses label cells with `tltk.data.labels.parse_label`, so every source reads labels
the same way, and raises `DataError` for a kind it cannot give. Splitting what the source did
not, cleaning and the class checks happen after, in one place (`tltk.data.assemble`).

Adding a source = one file here with its reader + its test + one line in `SOURCES` (and its
name in `DataConfig.source`). Readers import only the leaf modules (errors, types, labels,
splits, extensions, sources.base), never each other or this registry, so the data layer's
import graph has no cycle (tests/test_data_imports.py checks it).
"""

from __future__ import annotations

import importlib
from typing import Protocol

from tltk.data.errors import DataError
from tltk.data.types import SourceData
from tltk.recipe import DataConfig

SOURCES: dict[str, dict[str, str]] = {
    "image": {
        "folder": "tltk.data.sources.folder:read_folder",
        "csv": "tltk.data.sources.manifest:read_manifest",
        "tfds": "tltk.data.sources.tfds_images:read_tfds",
        "tfrecord": "tltk.data.sources.tfrecord:read_image_records",
    },
    "text": {
        "text": "tltk.data.sources.text_files:read_text_files",
        "csv": "tltk.data.sources.text_files:read_text_files",
        "tfds": "tltk.data.sources.tfds_text:read_tfds_text",
        "tfrecord": "tltk.data.sources.tfrecord:read_text_records",
    },
}
"""Modality (the recipe's `task`: image or text) -> `data.source` -> "module:reader". Readers
are imported when used, so reading a folder never imports TensorFlow Datasets."""


class Reader(Protocol):
    def __call__(self, cfg: DataConfig, label_kind: str) -> SourceData: ...


def get_reader(modality: str, source: str) -> Reader:
    """The reader of `data.source` `source` for `modality` data, or a DataError naming both."""
    readers = SOURCES.get(modality)
    if readers is None:
        raise DataError(f"no data sources for {modality!r} data; known: {', '.join(SOURCES)}")
    if source not in readers:
        raise DataError(
            f"data.source {source!r} is not a source of {modality} data (use {', '.join(readers)})"
        )
    module, name = readers[source].split(":")
    return getattr(importlib.import_module(module), name)


def read_source(cfg: DataConfig, modality: str, label_kind: str) -> SourceData:
    """Read `cfg` with the reader `SOURCES` names for `modality` and `cfg.source`."""
    return get_reader(modality, cfg.source)(cfg, label_kind)
