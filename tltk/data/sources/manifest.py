"""CSV image manifests: an image column (paths relative to the manifest's folder), a label
column and an optional `split` column."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from tltk.data.errors import DataError
from tltk.data.labels import class_names_of, encode_labels, parse_label
from tltk.data.sources.base import need_path, refuse_dropped
from tltk.data.splits import SPLIT_COLUMN, canonical_split
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig


def read_manifest(cfg: DataConfig, label_kind: str) -> SourceData:
    """The manifest `cfg.path`: columns `cfg.image_column` and `cfg.label_column`.

    Paths that lead out of the manifest's folder (`../x`, absolute paths elsewhere, symlinks to
    elsewhere) are refused with their lines unless `cfg.allow_outside_paths`. Labels are read
    by `tltk.data.labels.parse_label` (multi-label: a JSON list or `cfg.label_delimiter`).
    Rows whose file does not exist go to `found["missing_files"]`, rows without a label to
    `found["dropped"]` (or stop, under `clean.corrupt: error`).
    """
    manifest = need_path(cfg)
    columns, rows = _read_rows(manifest, cfg)
    base = manifest.parent
    records, missing, outside, dropped, seen = [], [], [], [], []
    for line, row in rows:
        origin = f"{manifest}:line {line}"
        cell = (row.get(cfg.image_column) or "").strip()
        path = Path(cell) if os.path.isabs(cell) else base / cell
        if not cfg.allow_outside_paths and _leaves(path, base):
            outside.append(f"{origin}: {cell!r} is {path.resolve()}")
            continue
        label = parse_label(row.get(cfg.label_column), origin, cfg, label_kind)
        if label is None:
            dropped.append({"origin": origin, "reason": f"missing label ({cfg.label_column!r})"})
            continue
        seen.append(label)  # from every row: a class whose files are all missing still shows
        split = (
            canonical_split(row.get(SPLIT_COLUMN) or "", origin)
            if SPLIT_COLUMN in columns
            else "train"
        )
        if not cell or not path.is_file():
            missing.append({"origin": origin, "file": str(path)})
            continue
        records.append((split, str(path), label, origin))
    if outside:
        _refuse_outside(outside, base)
    refuse_dropped(dropped, cfg)
    class_names = class_names_of(seen, cfg, label_kind)
    out = {}
    for split in dict.fromkeys(r[0] for r in records):
        chosen = [r for r in records if r[0] == split]
        labels = encode_labels([r[2] for r in chosen], class_names, label_kind)
        paths = np.array([r[1] for r in chosen], dtype=object)
        out[split] = Split(paths, labels, "path", [r[3] for r in chosen])
    found = {"missing_files": missing, "dropped": dropped}
    return SourceData(class_names, out, {"type": "csv", "path": str(manifest)}, found)


def _read_rows(manifest: Path, cfg: DataConfig) -> tuple[list[str], list[tuple[int, dict]]]:
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for key, needed in (("image_column", cfg.image_column), ("label_column", cfg.label_column)):
            if needed not in columns:
                raise DataError(
                    f"{manifest}: no column {needed!r} (data.{key}); columns are {columns}"
                )
        return columns, [(reader.line_num, row) for row in reader]


def _leaves(path: Path, base: Path) -> bool:
    """Whether `path` lands outside the folder `base` once `..` and symlinks are resolved.

    Symlinks count where they point: a link out of the folder reads a file the manifest's folder
    does not hold, just as `../x` does (an unpacked archive can carry such links).
    """
    return not path.resolve().is_relative_to(base.resolve())


def _refuse_outside(outside: list[str], base: Path) -> None:
    shown = "\n  ".join(outside[:10])
    more = f"\n  ... and {len(outside) - 10} more" if len(outside) > 10 else ""
    raise DataError(
        f"{len(outside)} manifest row(s) name images outside the manifest's folder "
        f"{base.resolve()}:\n  {shown}{more}\nMove the images under that folder (paths "
        "relative to the manifest), or set data.allow_outside_paths: true to read them there."
    )
