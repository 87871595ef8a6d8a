"""Labelled texts: a recipe's `data` section -> checked, split `LabelledData`.

    source (a reader in `tltk.data.sources`: text | csv files, or tfds) -> decode (UTF-8; bad
    bytes replaced and reported, never a crash) -> drop empty texts and missing labels
    (reported with file and line) -> limit_per_class -> `tltk.data.assemble`: split what the
    files did not (seeded, stratified, equal texts kept together) -> duplicates / leakage /
    label conflicts -> class checks -> report

Everything after reading is the same mechanism as for images. The tokenizer is applied to the
`(texts, labels)` batches `build_pipeline` makes by the text modality's preprocessor
(tltk/modalities/text.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tltk.data.assemble import assemble_labelled_data, inspection_note, record_digests
from tltk.data.duplicates import compact_digests
from tltk.data.errors import DataError
from tltk.data.labels import label_kind_of
from tltk.data.report import summary_lines
from tltk.data.sources import read_source
from tltk.data.splits import limit_per_class
from tltk.data.types import LabelledData, Split
from tltk.recipe import DataConfig


def load_text_data(
    cfg: DataConfig,
    *,
    seed: int,
    multi_label: bool = False,
    regression: bool = False,
    report_path: str | Path | None = None,
    min_classes: int = 2,
) -> LabelledData:
    """Read, clean and split labelled texts as `cfg` describes (`source: text`, `csv` or `tfds`).

    Files: `cfg.path` (one file, rows optionally assigned by a `split` column), or `cfg.splits`
    mapping train/val/test to files (relative to `cfg.path` when that is a folder). The format
    comes from the extension (.csv, .tsv/.tab, .jsonl/.ndjson/.json) or is sniffed. Columns
    (keys, for JSONL): `cfg.text_column`, `cfg.label_column`. Multi-label cells hold a JSON list
    or labels joined by `cfg.label_delimiter`.

    Splits the files do not give are carved out of train with `cfg.val_fraction` /
    `cfg.test_fraction`, stratified and seeded, like images. Empty texts and missing labels are
    dropped and reported (`clean.corrupt: error` stops instead); bytes that are not UTF-8 are
    replaced by U+FFFD and the rows reported; exact duplicates across splits follow
    `clean.leakage`. The report is in `LabelledData.report` and, with `report_path`, a JSON file.
    """
    multi_label = multi_label or cfg.multi_label
    label_kind = label_kind_of(multi_label=multi_label, regression=regression)
    source = read_source(cfg, "text", label_kind)
    if not regression and len(source.class_names) < min_classes:
        raise DataError(
            f"{source.where}: a single class {source.class_names}; a classifier needs two or more"
        )
    splits = source.splits
    if cfg.limit_per_class is not None and not regression:
        splits = {n: limit_per_class(s, cfg.limit_per_class, seed=seed) for n, s in splits.items()}
    extra = {"dropped": [], "bad_encoding": [], **source.found}
    streamed = [n for n, s in splits.items() if s.streamed]
    if streamed:  # the reader's pass found empty texts and bad bytes as a file read does
        extra["inspection"] = inspection_note(source, streamed, decoded=True)
    data = assemble_labelled_data(
        source,
        splits,
        {n: record_digests(s) if s.streamed else _digests(s) for n, s in splits.items()},
        cfg,
        seed=seed,
        multi_label=multi_label,
        regression=regression,
        extra_report=extra,
        report_path=report_path,
    )
    for line in summary(data.report):
        print(line)
    return data


def _digests(split: Split) -> np.ndarray:
    """Content hashes of the texts: equal texts are duplicates (and stay in one split)."""
    texts = (str(t).encode("utf-8") for t in split.examples)
    return compact_digests([hashlib.blake2b(t, digest_size=16).hexdigest() for t in texts])


def summary(report: dict) -> list[str]:
    """A few human lines about a text data report."""
    return summary_lines(
        report,
        {
            "rows dropped (empty text, missing label)": len(report["dropped"]),
            "rows with bytes that are not UTF-8 (replaced)": len(report["bad_encoding"]),
        },
        what="text",
    )
