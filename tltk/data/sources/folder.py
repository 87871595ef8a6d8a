"""Image folders: `root/<class>/**/<image>`, or `root/<split>/<class>/...`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tltk.data.errors import DataError
from tltk.data.extensions import IMAGE_EXTENSIONS
from tltk.data.labels import one_hot
from tltk.data.sources.base import need_path
from tltk.data.splits import SPLIT_ALIASES, canonical_split
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig


def read_folder(cfg: DataConfig, label_kind: str) -> SourceData:
    """Class folders under `cfg.path`, split by `cfg.splits` (split -> sub-folder) if given.

    With no `splits`, a root whose sub-folders are all split names (train, val, test) holding
    class folders is read as pre-split, which is what `tltk.data.offline` writes. Files that are
    not images are reported in `found["ignored_files"]`; hidden files are skipped silently.
    """
    if label_kind == "value":
        raise DataError("data.source folder gives class labels; regression needs a csv manifest")
    root = need_path(cfg)
    if not root.is_dir():
        raise DataError(f"data.path {root} is not a folder; a folder source needs class folders")
    splits = cfg.splits
    if not splits:
        subdirs = _subdirs(root)
        if (
            subdirs
            and "train" in subdirs
            and all(d.lower() in SPLIT_ALIASES and _subdirs(root / d) for d in subdirs)
        ):
            splits = {d: d for d in subdirs}
    layout = {canonical_split(k, "data.splits"): root / v for k, v in splits.items()}
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
        labels = one_hot(ids, len(class_names)) if label_kind == "classes" else ids
        # No origins: a path names itself (a list of them would cost 8 bytes a file per copy).
        out[split] = Split(np.array(paths, dtype=object), labels, "path")
    description = {"type": "folder", "path": str(root)}
    return SourceData(class_names, out, description, {"ignored_files": ignored})


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
