"""The accuracy benchmark's data: real sources, fixed seeded splits written as files.

Every case's data is written once, offline and deterministically, as pre-split files that tltk
and the baselines both read (image folders `train/ val/ test/<class>/<i>.png`; one CSV or JSONL
file of texts with a `split` column), so every method sees the very same examples. A folder
carries a marker with what it holds; asking again for the same thing reuses it, asking for
something else in its place is refused.

Sources: scikit-learn's digits (1,797 real 8x8 scans), Fashion-MNIST from Debian's
`dataset-fashion-mnist` (read with `tltk.data.offline.read_idx`), and the Debian package
descriptions that `scripts/make_text_data.py --all-sections --all-tags` writes. Exact duplicate
images are dropped before splitting (first one kept), so tltk's leakage check never removes a
val/test image that a baseline scores.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tltk.data.offline import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx
from tltk.io import atomic_directory, atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
MARKER = ".accuracy-data.json"
SECTIONS_FILE = "debian_sections_all/texts.csv"
TAGS_FILE = "debian_tags_all/texts.jsonl"


def digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits as uint8 [N, 8, 8] in 0..255 (like `tltk data digits`), labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    keep = first_occurrences(images)
    return images[keep], d.target[keep], [str(c) for c in range(10)]


def fashion(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fashion-MNIST `train` or `test`: uint8 [N, 28, 28], labels, class names."""
    prefix = "train" if split == "train" else "t10k"
    source = Path(FASHION_MNIST_DIR)
    images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    keep = first_occurrences(images)
    return images[keep], labels[keep], list(FASHION_MNIST_CLASSES)


def first_occurrences(images: np.ndarray) -> np.ndarray:
    """Indices of the first image of each distinct pixel content (exact duplicates dropped)."""
    seen: dict[bytes, int] = {}
    for i, image in enumerate(images):
        seen.setdefault(image.tobytes(), i)
    return np.array(sorted(seen.values()), dtype=np.int64)


def per_class_sample(
    labels: np.ndarray, classes: list[int], counts: list[int], seed: int
) -> list[np.ndarray]:
    """Disjoint seeded samples: `counts[j]` indices of each class in `classes` for sample j,
    then (last) every remaining index of those classes."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(len(counts) + 1)]
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for j, n in enumerate(counts):
            if start + n > len(members):
                raise SystemExit(f"class {c}: {len(members)} images, fewer than {sum(counts)}")
            out[j] += members[start : start + n].tolist()
            start += n
        out[-1] += members[start:].tolist()
    return [np.sort(np.array(o, dtype=np.int64)) for o in out]


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> dict[str, np.ndarray]:
    """Indices for train/val/test: `fractions` (val, test) of each class, seeded."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(fractions[0] * len(members)))
        n_test = int(round(fractions[1] * len(members)))
        parts["val"] += members[:n_val].tolist()
        parts["test"] += members[n_val : n_val + n_test].tolist()
        parts["train"] += members[n_val + n_test :].tolist()
    return {k: np.sort(np.array(v, dtype=np.int64)) for k, v in parts.items()}


def write_once(folder: Path, params: dict, write: Callable[[Path], dict]) -> Path:
    """`write(tmp)` into a folder renamed to `folder` when complete, with a marker of `params`
    and the counts `write` returns. A folder with the same params is reused as it is."""
    marker = folder / MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found.get("params") == params:
            return folder
        raise SystemExit(
            f"{folder} holds {found.get('params')}, not {params}; remove it or pass another "
            "--data-root"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(folder) as tmp:
        counts = write(tmp)
        atomic_write_json(tmp / MARKER, {"params": params, "counts": counts})
    return folder


def write_image_splits(
    folder: Path,
    params: dict,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: list[str],
) -> Path:
    """`folder/<split>/<class>/<i>.png` from {split: (uint8 images, label ids)}."""

    def write(tmp: Path) -> dict:
        counts = {}
        for split, (images, labels) in splits.items():
            for c in np.unique(labels):
                (tmp / split / class_names[c]).mkdir(parents=True)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                Image.fromarray(image).save(tmp / split / class_names[label] / f"{i}.png")
            counts[split] = len(labels)
        return counts

    return write_once(folder, params, write)


def text_source(data_root: Path, name: str) -> Path:
    """data/debian_sections_all/texts.csv or data/debian_tags_all/texts.jsonl, written by
    scripts/make_text_data.py (run here when missing)."""
    path = data_root / name
    if not path.is_file():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "make_text_data.py"), "--all-sections",
             "--all-tags", "--out", str(data_root)],
            check=True,
        )  # fmt: skip
    return path


def read_sections(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def read_tags(path: Path) -> tuple[list[str], list[list[str]]]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in records], [r["labels"] for r in records]


def write_texts(
    folder: Path, params: dict, texts: list[str], labels: list, split_of: dict[int, str]
) -> Path:
    """`folder/texts.csv` (text,label,split) or, for label lists, `folder/texts.jsonl`
    ({"text", "labels", "split"}): the rows of `split_of` (index -> split), in index order."""
    multi = isinstance(labels[0], list)

    def write(tmp: Path) -> dict:
        order = sorted(split_of)
        if multi:
            lines = [
                json.dumps({"text": texts[i], "labels": labels[i], "split": split_of[i]}) + "\n"
                for i in order
            ]
            atomic_write_text(tmp / "texts.jsonl", "".join(lines))
        else:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["text", "label", "split"])
            writer.writerows([texts[i], labels[i], split_of[i]] for i in order)
            atomic_write_text(tmp / "texts.csv", out.getvalue())
        return {s: sum(v == s for v in split_of.values()) for s in ("train", "val", "test")}

    write_once(folder, params, write)
    return folder / ("texts.jsonl" if multi else "texts.csv")


def proportional_sample(labels: list[str], total: int, seed: int) -> np.ndarray:
    """About `total` indices, the same fraction of every class (the imbalance kept), seeded."""
    labels_arr = np.array(labels)
    fraction = min(1.0, total / len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in sorted(set(labels)):
        members = np.flatnonzero(labels_arr == c)
        chosen += rng.choice(members, size=round(fraction * len(members)), replace=False).tolist()
    return np.sort(np.array(chosen, dtype=np.int64))


def random_split(n: int, fractions: tuple[float, float], seed: int) -> list[str]:
    """A split name per index: `fractions` (val, test) of a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = round(fractions[0] * n), round(fractions[1] * n)
    names = np.array(["train"] * n, dtype=object)
    names[order[:n_val]] = "val"
    names[order[n_val : n_val + n_test]] = "test"
    return names.tolist()
