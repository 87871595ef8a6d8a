"""Where examples come from: an image folder tree, a CSV manifest, or TensorFlow Datasets
(`tltk.data.tfds_sources`).

Each reader returns a `SourceData`: class names, the splits the source itself defines (only
`train` when it defines none), and what it skipped. Splitting, cleaning and checks happen later,
in one place (`tltk.data.images`), whatever the source.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tltk.data.errors import DataError
from tltk.data.splits import SPLIT_ALIASES
from tltk.data.types import Split
from tltk.recipe import DataConfig

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
"""What a folder source reads (case-insensitive): the formats `tf.io.decode_image` decodes."""

SPLIT_COLUMN = "split"


@dataclass
class SourceData:
    """What a source gives before splitting and cleaning."""

    class_names: list[str]
    splits: dict[str, Split]
    """Canonical split names (train/val/test); just `train` when the source has no splits."""
    description: dict
    ignored: list[str] = field(default_factory=list)
    """Files that are not images (folder source)."""
    missing: list[dict] = field(default_factory=list)
    """Manifest rows whose file does not exist: {"origin": "x.csv:line 3", "file": ...}."""


def read_source(cfg: DataConfig, *, multi_label: bool, regression: bool) -> SourceData:
    """Dispatch on `cfg.source` (folder, csv, tfds)."""
    if cfg.source == "folder":
        if regression:
            raise DataError(
                "data.source folder gives class labels; regression needs a csv manifest"
            )
        return read_folder(_need_path(cfg), cfg.splits, multi_label=multi_label)
    if cfg.source == "csv":
        return read_csv(_need_path(cfg), cfg, multi_label=multi_label, regression=regression)
    if cfg.source == "tfds":
        from tltk.data.tfds_sources import read_tfds

        return read_tfds(cfg, multi_label=multi_label)
    raise DataError(f"data.source {cfg.source!r} is not an image source (use folder, csv or tfds)")


def _need_path(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise DataError(f"data.path is required for data.source {cfg.source}")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"data.path {path} does not exist; check the path in the recipe")
    return path


def _canonical_split(name: str, where: str) -> str:
    canonical = SPLIT_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise DataError(f"{where}: unknown split {name!r}; use one of train, val, test")
    return canonical


def _one_hot(ids: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(ids), k), dtype=np.float32)
    out[np.arange(len(ids)), ids] = 1.0
    return out


# --------------------------------------------------------------------------- folder


def read_folder(root: Path, splits: dict[str, str], *, multi_label: bool = False) -> SourceData:
    """`root/<class>/**/<image>`, or `root/<split>/<class>/...` for each entry of `splits`.

    With no `splits`, a root whose sub-folders are all split names (train, val, test) holding
    class folders is read as pre-split, which is what `tltk.data.offline` writes.
    """
    if not root.is_dir():
        raise DataError(f"data.path {root} is not a folder; a folder source needs class folders")
    if not splits:
        subdirs = _subdirs(root)
        if (
            subdirs
            and "train" in subdirs
            and all(d.lower() in SPLIT_ALIASES and _subdirs(root / d) for d in subdirs)
        ):
            splits = {d: d for d in subdirs}
    layout = {_canonical_split(k, "data.splits"): root / v for k, v in splits.items()}
    if not layout:
        layout = {"train": root}
    ignored: list[str] = []
    files: dict[str, dict[str, list[str]]] = {}
    for split, folder in layout.items():
        if not folder.is_dir():
            raise DataError(f"split folder {folder} (data.splits.{split}) does not exist")
        files[split] = _scan_classes(folder, ignored)
    class_names = sorted({c for per_class in files.values() for c in per_class})
    index = {c: i for i, c in enumerate(class_names)}
    out = {}
    for split, per_class in files.items():
        paths = [p for c in sorted(per_class) for p in per_class[c]]
        ids = np.array([index[c] for c in sorted(per_class) for _ in per_class[c]], dtype=np.int64)
        labels = _one_hot(ids, len(class_names)) if multi_label else ids
        out[split] = Split(np.array(paths, dtype=object), labels, "path", list(paths))
    return SourceData(class_names, out, {"type": "folder", "path": str(root)}, ignored)


def _subdirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _scan_classes(folder: Path, ignored: list[str]) -> dict[str, list[str]]:
    classes = _subdirs(folder)
    if not classes:
        raise DataError(
            f"{folder} has no class sub-folders; lay images out as {folder}/<class>/<image>"
        )
    # Hidden files (.DS_Store, tltk's own .tltk-dataset.json) are skipped without a report.
    ignored.extend(
        str(folder / e.name) for e in os.scandir(folder) if e.is_file() and e.name[0] != "."
    )
    per_class = {}
    for name in classes:
        images = []
        for dirpath, dirnames, filenames in os.walk(folder / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                path = os.path.join(dirpath, f)
                is_image = os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
                if f.startswith("."):
                    continue
                (images if is_image else ignored).append(path)
        if not images:
            raise DataError(
                f"class folder {folder / name} contains no images "
                f"({' '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder"
            )
        per_class[name] = images
    return per_class


# --------------------------------------------------------------------------- csv manifest


def read_csv(
    manifest: Path, cfg: DataConfig, *, multi_label: bool = False, regression: bool = False
) -> SourceData:
    """A manifest with an image column (relative to the manifest's folder) and a label column.

    Paths that lead out of the manifest's folder (`../x`, absolute paths elsewhere, symlinks to
    elsewhere) are refused with their lines unless `cfg.allow_outside_paths`.
    Multi-label cells hold several labels joined by `cfg.label_delimiter`, or a JSON list.
    An optional `split` column (train/val/test) assigns rows to splits.
    """
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for needed in (cfg.image_column, cfg.label_column):
            if needed not in columns:
                key = "image_column" if needed == cfg.image_column else "label_column"
                raise DataError(
                    f"{manifest}: no column {needed!r} (data.{key}); columns are {columns}"
                )
        rows = [(reader.line_num, row) for row in reader]
    base = manifest.parent
    records, missing, outside, seen = [], [], [], set()
    for line, row in rows:
        origin = f"{manifest}:line {line}"
        cell = (row.get(cfg.image_column) or "").strip()
        path = Path(cell) if os.path.isabs(cell) else base / cell
        if not cfg.allow_outside_paths and _leaves(path, base):
            outside.append(f"{origin}: {cell!r} is {path.resolve()}")
            continue
        label = _parse_label(row.get(cfg.label_column) or "", origin, cfg, multi_label, regression)
        if not regression:  # from every row: a class whose files are all missing still shows
            seen.update(label if multi_label else [label])
        split = (
            _canonical_split(row.get(SPLIT_COLUMN) or "", origin)
            if SPLIT_COLUMN in columns
            else "train"
        )
        if not cell or not path.is_file():
            missing.append({"origin": origin, "file": str(path)})
            continue
        records.append((split, str(path), label, origin))
    if outside:
        _refuse_outside(outside, base)
    class_names = [cfg.label_column] if regression else sorted(seen)
    index = {c: i for i, c in enumerate(class_names)}
    out = {}
    for split in dict.fromkeys(r[0] for r in records):
        chosen = [r for r in records if r[0] == split]
        if regression:
            labels = np.array([r[2] for r in chosen], dtype=np.float32)
        elif multi_label:
            labels = np.zeros((len(chosen), len(class_names)), dtype=np.float32)
            for i, r in enumerate(chosen):
                labels[i, [index[x] for x in r[2]]] = 1.0
        else:
            labels = np.array([index[r[2]] for r in chosen], dtype=np.int64)
        paths = np.array([r[1] for r in chosen], dtype=object)
        out[split] = Split(paths, labels, "path", [r[3] for r in chosen])
    return SourceData(class_names, out, {"type": "csv", "path": str(manifest)}, [], missing)


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


def _labels_of(cell: str, cfg: DataConfig) -> list[str]:
    cell = cell.strip()
    if cell.startswith("["):
        return [str(x).strip() for x in json.loads(cell) if str(x).strip()]
    parts = cell.split(cfg.label_delimiter) if cfg.label_delimiter else [cell]
    return [p.strip() for p in parts if p.strip()]


def _parse_label(cell: str, origin: str, cfg: DataConfig, multi_label: bool, regression: bool):
    if regression:
        try:
            return float(cell)
        except ValueError:
            raise DataError(f"{origin}: label {cell!r} is not a number (regression)") from None
    if multi_label:
        try:
            return _labels_of(cell, cfg)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{origin}: label cell {cell!r} is not a valid JSON list: {e}"
            ) from None
    if not cell.strip():
        raise DataError(f"{origin}: empty label in column {cfg.label_column!r}")
    return cell.strip()
