"""Labelled texts: CSV / TSV / JSONL files or a TensorFlow Datasets text set -> `LabelledData`.

    files (or tfds) -> decode (UTF-8; bad bytes replaced and reported, never a crash)
    -> drop empty texts and missing labels (reported with file and line) -> limit_per_class
    -> split what the files did not (seeded, stratified, equal texts kept together)
    -> duplicates / leakage / label conflicts -> class checks -> report

Everything after reading (splitting, duplicates and leakage, class checks, the report) is the
image side's `assemble_labelled_data`: both tasks split and clean with one mechanism.
`tokenize_pipeline` maps a backbone's tokenizer over the `(texts, labels)` batches that
`build_pipeline` makes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tltk.data.errors import DataError
from tltk.data.images import _where, assemble_labelled_data, summary_lines
from tltk.data.sources import SourceData, _canonical_split
from tltk.data.splits import limit_per_class
from tltk.data.types import LabelledData, Split
from tltk.recipe import DataConfig

JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")
TSV_EXTENSIONS = (".tsv", ".tab")
SPLIT_COLUMN = "split"
_SURROGATE = re.compile("[\udc80-\udcff]")  # undecodable bytes, kept by "surrogateescape"


@dataclass
class Row:
    split: str
    text: str | None
    label: object
    origin: str
    """`file:line N`, what every message and report entry names."""
    problem: str | None = None
    """Why the row cannot be read at all (e.g. invalid JSON)."""


def load_text_data(
    cfg: DataConfig,
    *,
    seed: int,
    multi_label: bool = False,
    regression: bool = False,
    report_path: str | Path | None = None,
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
    if cfg.source == "tfds":
        from tltk.data.tfds_sources import read_tfds_text

        source, dropped, bad_encoding = read_tfds_text(cfg, multi_label=multi_label)
    elif cfg.source in ("text", "csv"):
        rows, bad_encoding = read_text_rows(cfg)
        rows, dropped = _drop_unusable(rows, cfg, multi_label, regression)
        source = _to_source(rows, cfg, multi_label, regression)
    else:
        raise DataError(f"data.source {cfg.source!r}: text data comes from text, csv or tfds")
    if not regression and len(source.class_names) < 2:
        raise DataError(
            f"{_where(source)}: a single class {source.class_names}; a classifier needs two or more"
        )
    splits = source.splits
    if cfg.limit_per_class is not None and not regression:
        splits = {n: limit_per_class(s, cfg.limit_per_class, seed=seed) for n, s in splits.items()}
    data = assemble_labelled_data(
        source,
        splits,
        {n: _digests(s) for n, s in splits.items()},
        cfg,
        seed=seed,
        multi_label=multi_label,
        regression=regression,
        extra_report={"dropped": dropped, "bad_encoding": bad_encoding},
        report_path=report_path,
    )
    for line in summary(data.report):
        print(line)
    return data


def tokenize_pipeline(ds, backbone):
    """Map `backbone.preprocessor` (strings -> token inputs) over batched `(texts, labels, ...)`.

    After batching, so the tokenizer runs once per batch, in parallel with training.
    """
    import tensorflow as tf

    preprocessor = backbone.preprocessor

    def tokenize(texts, *rest):
        return (preprocessor(texts), *rest)

    return ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- reading files


def text_files(cfg: DataConfig) -> dict[str, Path | None]:
    """split -> file (`cfg.splits`), or {None: cfg.path} when rows carry their own split."""
    if not cfg.path and not cfg.splits:
        raise DataError("data.path (a CSV/TSV/JSONL file) or data.splits is required for texts")
    base = Path(cfg.path).expanduser() if cfg.path else None
    if cfg.splits:
        root = base if base is not None and base.is_dir() else Path()
        files = {
            _canonical_split(k, "data.splits"): root / Path(v).expanduser()
            for k, v in cfg.splits.items()
        }
    else:
        files = {None: base}
    for split, path in files.items():
        if not path.is_file():
            key = f"data.splits.{split}" if split else "data.path"
            raise DataError(f"{key}: {path} is not a file; give a CSV, TSV or JSONL file of texts")
    return files


def read_text_rows(cfg: DataConfig) -> tuple[list[Row], list[str]]:
    """All rows of the configured files, and the origins of rows whose bytes were not UTF-8."""
    rows: list[Row] = []
    bad: list[str] = []
    for split, path in text_files(cfg).items():
        file_rows, file_bad = read_text_file(path, cfg, split=split)
        rows += file_rows
        bad += file_bad
    return rows, bad


def read_text_file(path: Path, cfg: DataConfig, *, split: str | None = None):
    """Rows of one CSV / TSV / JSONL file (see `load_text_data`); never fails on bad bytes."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    content = raw.decode("utf-8", errors="surrogateescape")
    fmt = _format(path, content)
    parse = _jsonl_records if fmt == "jsonl" else _delimited_records
    rows, bad = [], []
    for line, record, problem in parse(path, content, cfg, "\t" if fmt == "tsv" else ","):
        origin = f"{path}:line {line}"
        if problem:
            rows.append(Row(split or "train", None, None, origin, problem))
            continue
        text, label = record.get(cfg.text_column), record.get(cfg.label_column)
        if any(_SURROGATE.search(v) for v in _strings(text) + _strings(label)):
            bad.append(origin)
            text, label = _replace_bad(text), _replace_bad(label)
        row_split = split or "train"
        if split is None and record.get(SPLIT_COLUMN) not in (None, ""):
            row_split = _canonical_split(str(record[SPLIT_COLUMN]), origin)
        rows.append(Row(row_split, None if text is None else str(text), label, origin))
    return rows, bad


def _format(path: Path, content: str) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_EXTENSIONS:
        return "jsonl"
    if suffix in TSV_EXTENSIONS:
        return "tsv"
    if suffix == ".csv":
        return "csv"
    head = content.lstrip()[:1]
    if head == "{":
        return "jsonl"
    first = content.split("\n", 1)[0]
    return "tsv" if first.count("\t") > first.count(",") else "csv"


def _delimited_records(path: Path, content: str, cfg: DataConfig, delimiter: str):
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a header row with {cfg.text_column!r}")
    header = [h.strip() for h in header]
    for key, column in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
        if column not in header:
            raise DataError(
                f"{path}: no column {column!r} (data.{key}); the header has {header}. "
                f"Set data.{key}, or check the delimiter ({'tab' if delimiter == chr(9) else ','})"
            )
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue  # blank line
        yield reader.line_num, dict(zip(header, cells, strict=False)), None


def _jsonl_records(path: Path, content: str, cfg: DataConfig, _delimiter: str):
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield number, None, f"not valid JSON ({e.msg}, column {e.colno})"
            continue
        if not isinstance(record, dict):
            yield number, None, "not a JSON object"
            continue
        yield number, record, None


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _replace_bad(value):
    """Undecodable bytes (kept as surrogates) -> U+FFFD, the usual replacement character."""
    if isinstance(value, list):
        return [_replace_bad(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


# --------------------------------------------------------------------------- rows -> splits


def _drop_unusable(rows: list[Row], cfg: DataConfig, multi_label: bool, regression: bool):
    """Parse labels; drop rows without text or label (report them, or stop: clean.corrupt)."""
    kept, dropped = [], []
    for row in rows:
        if row.problem:
            reason = row.problem
        elif row.text is None or not row.text.strip():
            reason = "empty text" if row.text is not None else f"no {cfg.text_column!r} value"
        else:
            row.label = _parse_label(row.label, row.origin, cfg, multi_label, regression)
            reason = None if row.label is not None else f"missing label ({cfg.label_column!r})"
        if reason:
            dropped.append({"origin": row.origin, "reason": reason})
        else:
            row.text = row.text.strip()
            kept.append(row)
    if dropped and cfg.clean.corrupt == "error":
        shown = "\n  ".join(f"{d['origin']}: {d['reason']}" for d in dropped[:10])
        more = f"\n  ... and {len(dropped) - 10} more" if len(dropped) > 10 else ""
        raise DataError(
            f"{len(dropped)} unusable row(s):\n  {shown}{more}\n"
            "Fix them, or set data.clean.corrupt: drop to skip them (they are reported)."
        )
    return kept, dropped


def _parse_label(value, origin: str, cfg: DataConfig, multi_label: bool, regression: bool):
    """A class name, a list of names (multi-label) or a float (regression); None if missing."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{origin}: label {value!r} is not a number (regression)") from None
    if not multi_label:
        if isinstance(value, list):
            raise DataError(
                f"{origin}: label {value!r} is a list; set data.multi_label: true (or head.type: "
                "multilabel) for several labels per text"
            )
        return str(value).strip()
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"{origin}: label {value!r} is not a valid JSON list: {e}") from None
    if isinstance(value, list):
        return sorted({str(v).strip() for v in value if str(v).strip()})
    parts = str(value).split(cfg.label_delimiter) if cfg.label_delimiter else [str(value)]
    return sorted({p.strip() for p in parts if p.strip()})


def _to_source(rows: list[Row], cfg: DataConfig, multi_label: bool, regression: bool):
    if regression:
        class_names = [cfg.label_column]
    elif multi_label:
        class_names = sorted({x for r in rows for x in r.label})
    else:
        class_names = sorted({r.label for r in rows})
    index = {c: i for i, c in enumerate(class_names)}
    splits = {}
    for name in dict.fromkeys(r.split for r in rows):
        chosen = [r for r in rows if r.split == name]
        if regression:
            labels = np.array([r.label for r in chosen], dtype=np.float32)
        elif multi_label:
            labels = np.zeros((len(chosen), len(class_names)), dtype=np.float32)
            for i, r in enumerate(chosen):
                labels[i, [index[x] for x in r.label]] = 1.0
        else:
            labels = np.array([index[r.label] for r in chosen], dtype=np.int64)
        texts = np.array([r.text for r in chosen], dtype=object)
        splits[name] = Split(texts, labels, "text", [r.origin for r in chosen])
    files = sorted({r.origin.rsplit(":line ", 1)[0] for r in rows})
    return SourceData(class_names, splits, {"type": "text", "path": ", ".join(files)})


def _digests(split: Split) -> np.ndarray:
    """Content hashes of the texts: equal texts are duplicates (and stay in one split)."""
    return np.array(
        [
            hashlib.blake2b(str(t).encode("utf-8"), digest_size=16).hexdigest()
            for t in split.examples
        ],
        dtype=object,
    )


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
