"""Replay buffers: a few training examples of each class, kept with a run for later rehearsal.

On disk (written into a temporary folder and renamed into place, so a buffer is whole or
absent, and never rewritten):

    RUN/replay/buffer.json     budget, selection, classes, examples per class, the run
    RUN/replay/manifest.csv    example, label, origin: one row per kept example
    RUN/replay/examples/       images, content-named, their bytes as they were read (texts
                               are in the manifest itself)

The buffer holds the examples themselves, not paths to them: it outlives the data it came
from. Selection is per class, with the budget shared evenly (a class with fewer examples
than its share gives the rest to the others): `herding` keeps, in order, the examples whose
running feature mean best approaches the class mean (iCaRL, Rebuffi et al. 2017, Alg. 4);
`random` a seeded uniform sample.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from tltk.data.types import Split
from tltk.errors import ContinueError
from tltk.io import atomic_directory, atomic_write_json, atomic_write_text, clean_stale_temporaries

BUFFER_DIR = "replay"
MANIFEST, INFO, EXAMPLES = "manifest.csv", "buffer.json", "examples"


def quotas(counts: np.ndarray, budget: int) -> np.ndarray:
    """Examples to keep per class: an even share of `budget`, never more than a class has;
    what a small class leaves goes to the others (largest counts first)."""
    counts = np.asarray(counts, dtype=np.int64)
    keep = np.zeros_like(counts)
    left = min(int(budget), int(counts.sum()))
    while left > 0:
        open_ = np.flatnonzero(keep < counts)
        share = max(left // len(open_), 1)
        for c in open_[np.argsort(-(counts[open_] - keep[open_]), kind="stable")]:
            take = min(share, counts[c] - keep[c], left)
            keep[c] += take
            left -= take
            if not left:
                break
    return keep


def herding(features: np.ndarray, m: int) -> np.ndarray:
    """Indices of `m` rows of `features`, in selection order: each step adds the row that brings
    the mean of the chosen (L2-normalised) rows closest to the mean of all of them."""
    f = np.asarray(features, dtype=np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    target, total = f.mean(axis=0), np.zeros(f.shape[1])
    chosen: list[int] = []
    free = np.ones(len(f), dtype=bool)
    for k in range(1, min(m, len(f)) + 1):
        distance = np.linalg.norm(target - (total + f) / k, axis=1)
        distance[~free] = np.inf
        best = int(np.argmin(distance))
        chosen.append(best)
        free[best] = False
        total += f[best]
    return np.array(chosen, dtype=np.int64)


def select(
    labels: np.ndarray,
    num_classes: int,
    budget: int,
    selection: str,
    *,
    seed: int,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the examples a buffer of `budget` keeps, class by class (class order, then
    selection order). `features` [N, D] are needed for herding."""
    labels = np.asarray(labels)
    keep = quotas(np.bincount(labels, minlength=num_classes), budget)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if not keep[c]:
            continue
        if selection == "herding":
            if features is None:
                raise ValueError("herding selects by features: pass features")
            chosen.append(members[herding(features[members], int(keep[c]))])
        else:
            chosen.append(np.sort(rng.choice(members, int(keep[c]), replace=False)))
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


def write_buffer(
    folder: str | Path, split: Split, index: np.ndarray, class_names: list[str], info: dict
) -> Path:
    """Keep `split`'s examples at `index` in `folder` (see the module docstring)."""
    folder = Path(folder)
    clean_stale_temporaries(folder.parent, targets=folder.name)  # a killed writer's
    kept = split.subset(index)
    rows = []
    with atomic_directory(folder) as tmp:
        if kept.kind != "text":
            (tmp / EXAMPLES).mkdir()
        for i in range(len(kept)):
            example = _store(kept, i, tmp / EXAMPLES)
            rows.append([example, class_names[int(kept.labels[i])], kept.origin(i)])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["example", "label", "origin"])
        writer.writerows(rows)
        atomic_write_text(tmp / MANIFEST, out.getvalue())
        per_class = np.bincount(kept.labels.astype(np.int64), minlength=len(class_names))
        atomic_write_json(
            tmp / INFO,
            {
                **info,
                "kind": "text" if kept.kind == "text" else "image",
                "size": len(kept),
                "classes": list(class_names),
                "per_class": {c: int(n) for c, n in zip(class_names, per_class, strict=True)},
            },
        )
    return folder


def _store(split: Split, i: int, examples_dir: Path) -> str:
    """The manifest's `example` cell: the text, or the image's file name in examples/."""
    if split.kind == "text":
        return str(split.examples[i])
    data = split.examples[i] if split.kind == "bytes" else Path(str(split.examples[i])).read_bytes()
    name = hashlib.blake2b(bytes(data), digest_size=16).hexdigest() + _suffix(split, i)
    path = examples_dir / name
    if not path.exists():
        path.write_bytes(bytes(data))  # inside the buffer's temporary folder
    return name


def _suffix(split: Split, i: int) -> str:
    if split.kind == "path":
        return Path(str(split.examples[i])).suffix.lower()
    return ""  # decoded by content, as tf.io.decode_image does


def read_buffer(folder: str | Path, class_names: list[str]) -> Split:
    """A buffer as a split (kind "path" for images, "text" for texts), labels as ids in
    `class_names`, which must hold every class the buffer has."""
    folder = Path(folder)
    info = json.loads((folder / INFO).read_text())
    kind = "text" if info["kind"] == "text" else "path"
    examples, labels, origins = [], [], []
    with open(folder / MANIFEST, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["label"] not in class_names:
                raise ContinueError(f"{folder}/{MANIFEST}: class {row['label']!r} is unknown")
            example = row["example"] if kind == "text" else str(folder / EXAMPLES / row["example"])
            examples.append(example)
            labels.append(class_names.index(row["label"]))
            origins.append("replay:" + row["origin"].removeprefix("replay:"))
    return Split(np.array(examples, dtype=object), np.array(labels, np.int64), kind, origins)


def buffer_info(folder: str | Path) -> dict:
    return json.loads((Path(folder) / INFO).read_text())
