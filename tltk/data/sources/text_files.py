"""Labelled texts in CSV / TSV / JSONL files: one file (rows may carry a `split`), or one file
per split. Never fails on bad bytes: they are replaced by U+FFFD and the rows reported."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tltk.data.errors import DataError
from tltk.data.extensions import JSONL_EXTENSIONS, TSV_EXTENSIONS
from tltk.data.labels import class_names_of, encode_labels, parse_label
from tltk.data.sources.base import refuse_dropped
from tltk.data.splits import SPLIT_COLUMN, canonical_split
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig

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


def read_text_files(cfg: DataConfig, label_kind: str) -> SourceData:
    """The texts of `cfg.path` (one file) or `cfg.splits` (split -> file, relative to
    `cfg.path` when that is a folder). The format comes from the extension (.csv, .tsv/.tab,
    .jsonl/.ndjson/.json) or is sniffed; columns (JSONL keys) are `cfg.text_column` and
    `cfg.label_column`. Rows without text or label are dropped and reported in
    `found["dropped"]` (or stop, under `clean.corrupt: error`); rows with bytes that are not
    UTF-8 are listed in `found["bad_encoding"]`."""
    rows, bad_encoding = read_text_rows(cfg)
    rows, dropped = _drop_unusable(rows, cfg, label_kind)
    class_names = class_names_of([r.label for r in rows], cfg, label_kind)
    splits = {}
    for name in dict.fromkeys(r.split for r in rows):
        chosen = [r for r in rows if r.split == name]
        labels = encode_labels([r.label for r in chosen], class_names, label_kind)
        texts = np.array([r.text for r in chosen], dtype=object)
        splits[name] = Split(texts, labels, "text", [r.origin for r in chosen])
    files = sorted({r.origin.rsplit(":line ", 1)[0] for r in rows})
    description = {"type": "text", "path": ", ".join(files)}
    return SourceData(
        class_names, splits, description, {"dropped": dropped, "bad_encoding": bad_encoding}
    )


def text_files(cfg: DataConfig) -> dict[str | None, Path]:
    """split -> file (`cfg.splits`), or {None: cfg.path} when rows carry their own split."""
    if not cfg.path and not cfg.splits:
        raise DataError("data.path (a CSV/TSV/JSONL file) or data.splits is required for texts")
    base = Path(cfg.path).expanduser() if cfg.path else None
    if cfg.splits:
        root = base if base is not None and base.is_dir() else Path()
        files = {
            canonical_split(k, "data.splits"): root / Path(v).expanduser()
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
    """Rows of one CSV / TSV / JSONL file (see `read_text_files`); never fails on bad bytes."""
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
            row_split = canonical_split(str(record[SPLIT_COLUMN]), origin)
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


def _drop_unusable(rows: list[Row], cfg: DataConfig, label_kind: str):
    """Parse labels; drop rows without text or label (report them, or stop: clean.corrupt)."""
    kept, dropped = [], []
    for row in rows:
        if row.problem:
            reason = row.problem
        elif row.text is None or not row.text.strip():
            reason = "empty text" if row.text is not None else f"no {cfg.text_column!r} value"
        else:
            row.label = parse_label(row.label, row.origin, cfg, label_kind)
            reason = None if row.label is not None else f"missing label ({cfg.label_column!r})"
        if reason:
            dropped.append({"origin": row.origin, "reason": reason})
        else:
            row.text = row.text.strip()
            kept.append(row)
    refuse_dropped(dropped, cfg)
    return kept, dropped
