"""Real image datasets available without network, written as class folders.

Recipes then read them with the ordinary `folder` source:

    prepare("fashion_mnist", "data/fashion_mnist", per_class=200)
    # data: {source: folder, path: data/fashion_mnist}   (train/ and test/ are found)

A folder appears complete or not at all (written beside, then renamed) and carries a marker
with what it holds, so a second call with the same arguments returns at once.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tltk.data.errors import DataError
from tltk.io import atomic_directory, atomic_write_json

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "t-shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]  # fmt: skip
MARKER = ".tltk-dataset.json"

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format; gzip-compressed when the name ends in .gz) as an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise DataError(f"{path}: IDX header says {shape} but holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_fashion_mnist(
    root: str | Path,
    *,
    per_class: int | None = None,
    seed: int = 0,
    source_dir: str | Path = FASHION_MNIST_DIR,
) -> Path:
    """Fashion-MNIST (Debian `dataset-fashion-mnist`) -> `root/{train,test}/<class>/<i>.png`.

    `per_class` keeps a seeded subset of that many images per class in each split; `<i>` is the
    image's index in the original file either way.
    """
    source_dir = Path(source_dir)
    files = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    absent = [n for pair in files.values() for n in pair if not (source_dir / n).is_file()]
    if absent:
        raise DataError(
            f"Fashion-MNIST files {absent} not found in {source_dir}; install them with "
            "`apt-get install dataset-fashion-mnist` (or pass source_dir)"
        )
    params = {"dataset": "fashion_mnist", "per_class": per_class, "seed": seed}

    def write(tmp: Path) -> dict:
        counts = {}
        for split, (images_file, labels_file) in files.items():
            images, labels = read_idx(source_dir / images_file), read_idx(source_dir / labels_file)
            index = _subset(labels, per_class, seed)
            names = [FASHION_MNIST_CLASSES[labels[i]] for i in index]
            _write_pngs(tmp / split, images, index, names)
            counts[split] = len(index)
        return counts

    return _write_once(Path(root), params, write)


def write_digits(root: str | Path, *, per_class: int | None = None, seed: int = 0) -> Path:
    """scikit-learn's digits (1797 real 8x8 scans, 0..16 scaled to 0..255) -> `root/<d>/<i>.png`.

    `per_class` keeps a seeded subset of that many images per digit.
    """
    from sklearn.datasets import load_digits

    def write(tmp: Path) -> dict:
        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
        index = _subset(digits.target, per_class, seed)
        _write_pngs(tmp, images, index, [str(digits.target[i]) for i in index])
        return {"all": len(index)}

    params = {"dataset": "digits", "per_class": per_class, "seed": seed}
    return _write_once(Path(root), params, write)


def prepare(name: str, root: str | Path, **kw) -> Path:
    """Write the offline dataset `name` (fashion_mnist, digits) under `root`; return `root`."""
    writers = {"fashion_mnist": write_fashion_mnist, "digits": write_digits}
    if name not in writers:
        raise DataError(f"unknown offline dataset {name!r}; known: {', '.join(writers)}")
    return writers[name](root, **kw)


def _subset(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def _write_pngs(folder: Path, images: np.ndarray, index: np.ndarray, classes: list[str]) -> None:
    for name in set(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
    # Serial on purpose: small PNGs encode faster than threads hand the GIL around
    # (docs/MEASURED.md).
    for i, name in zip(index, classes, strict=True):
        Image.fromarray(images[i]).save(folder / name / f"{i}.png")


def _write_once(root: Path, params: dict, write) -> Path:
    """Run `write(tmp)` into a folder renamed to `root` once complete, marker written last."""
    marker = root / MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in params} == params:
            return root
        raise DataError(
            f"{root} already holds {found}, not {params}; remove it or choose another folder"
        )
    if root.exists():
        raise DataError(f"{root} exists but is not a complete dataset export; remove it first")
    with atomic_directory(root) as tmp:
        counts = write(tmp)
        atomic_write_json(tmp / MARKER, {**params, "counts": counts})
    return root
