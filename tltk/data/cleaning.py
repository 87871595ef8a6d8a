"""Find what would break or mislead training before it starts: corrupt files, images TensorFlow
decodes wrongly, exact duplicates, train/test leakage and conflicting labels.

Files that `tf.io.decode_image(..., channels=3)` (the decode the pipeline and the SavedModel
share) reads correctly are counted; files it decodes wrongly or not at all (8-bit palette BMPs,
BMP variants, TIFF/PPM named .png/.jpg) are converted; truncated or random bytes are corrupt.
The measurements behind that split, per kind of file, are in docs/MEASURED.md.

Converted files become 8-bit RGB PNGs in a cache folder (named by the source's content hash, so
re-runs reuse them); the user's files are never modified.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tltk.data.errors import DataError
from tltk.data.types import Split, label_name
from tltk.io import atomic_write_bytes
from tltk.recipe import CleanConfig

TF_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP"})
"""Pillow format names of files `tf.io.decode_image` can decode (BMP only partly, see above)."""

SPLIT_PRIORITY = ("train", "val", "test")
"""Leakage keeps the copy in the earliest split of this order and drops the later ones."""


@dataclass
class FileCheck:
    """What inspecting one file found."""

    digest: str = ""
    kind: str = ""
    """Pillow `format/mode`, e.g. `PNG/RGB`."""
    error: str | None = None
    convert: str | None = None
    """Why TensorFlow would decode it wrongly (then it is converted), or None."""


def parallel_map(fn: Callable, items: Iterable, *, threads: int) -> list:
    """`fn` over items, in a thread pool when `threads` > 1.

    Threads pay off only for large files, where Pillow's decoding (which releases the GIL)
    dominates; for small ones the GIL hand-offs cost more (docs/MEASURED.md).
    """
    items = list(items)
    if threads <= 1 or len(items) < 2 * threads:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


def threads_for(split: Split, sample: int = 32, large_bytes: int = 64 * 1024) -> int:
    """One thread per core for large files, none for small ones (see `parallel_map`)."""
    head = split.examples[:sample]
    try:
        sizes = [len(x) if split.kind == "bytes" else os.path.getsize(x) for x in head]
    except OSError:
        sizes = []
    large = bool(sizes) and sum(sizes) / len(sizes) > large_bytes
    return (os.cpu_count() or 1) if large else 1


def read_bytes(example, kind: str) -> bytes:
    if kind == "bytes":
        return bytes(example)
    with open(example, "rb") as f:
        return f.read()


def check_file(data: bytes) -> FileCheck:
    """Hash the bytes and fully decode them with Pillow (a truncated file fails here)."""
    check = FileCheck(digest=hashlib.blake2b(data, digest_size=16).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            check.kind = f"{im.format}/{im.mode}"
            check.convert = tf_decode_problem(im.format, data)
    except Exception as e:  # Pillow raises many types for bad files; all mean "cannot decode"
        check.error = f"{type(e).__name__}: {e}"
    return check


def tf_decode_problem(fmt: str | None, data: bytes) -> str | None:
    """Why `tf.io.decode_image` would fail on or misread a file Pillow decodes; None if fine."""
    if fmt not in TF_FORMATS:
        return f"{fmt} is not a format TensorFlow decodes"
    if fmt == "BMP":
        # TF's BMP decoder handles uncompressed 24/32-bit pixels only; lower depths are
        # palette indices it reads as gray (8-bit) or rejects (1/4-bit).
        header_size = struct.unpack_from("<I", data, 14)[0]
        bits_at, compression = (
            (24, 0) if header_size == 12 else (28, struct.unpack_from("<I", data, 30)[0])
        )
        bits = struct.unpack_from("<H", data, bits_at)[0]
        if bits not in (24, 32) or compression != 0:
            return f"BMP with {bits}-bit pixels (compression {compression})"
    return None


def to_rgb_png(data: bytes) -> bytes:
    """Re-encode any image Pillow reads as an 8-bit RGB PNG, scaled the way TensorFlow does."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode.startswith("I"):
            # 16-bit gray: keep the high byte, as TF does for 16-bit PNGs. 32-bit ints have no
            # fixed range: treat them as 16-bit when they exceed 8 bits.
            array = np.asarray(im).astype(np.int64)
            if im.mode.startswith("I;16") or array.max() > 255:
                array = array >> 8
            rgb = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).convert("RGB")
        elif im.mode == "F":
            rgb = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8)).convert("RGB")
        else:
            rgb = im.convert("RGB")  # drops alpha, applies palettes and CMYK, as TF does
        buffer = io.BytesIO()
        rgb.save(buffer, "PNG")
        return buffer.getvalue()


def inspect_split(
    split: Split, policy: CleanConfig, converted_dir: Callable[[], Path]
) -> tuple[Split, np.ndarray, dict]:
    """Drop corrupt files, convert the ones TF misreads, hash all. Returns the cleaned split,
    its content digests (aligned with it) and the report entries.

    `converted_dir` is called only when a file needs converting (it may create a folder).
    """

    def run(i: int) -> tuple[FileCheck, str | bytes | None]:
        """Check one file; convert it when TF would misread it. Returns what replaces it."""
        try:
            data = read_bytes(split.examples[i], split.kind)
        except OSError as e:
            return FileCheck(error=f"{type(e).__name__}: {e}"), None
        check = check_file(data)
        if not check.convert or check.error:
            return check, None
        try:
            png = to_rgb_png(data)
        except Exception as e:  # a mode Pillow reads but cannot convert: unusable
            check.error = f"cannot convert ({check.convert}): {type(e).__name__}: {e}"
            return check, None
        if split.kind == "bytes":
            return check, png
        target = converted_dir() / f"{check.digest}.png"  # content-named: re-runs reuse it
        if not target.exists():
            atomic_write_bytes(target, png)
        return check, str(target)

    results = parallel_map(run, range(len(split)), threads=threads_for(split))
    origins = split.origins or [str(x) for x in split.examples]
    examples = split.examples.copy()
    corrupt, converted, kinds = [], [], defaultdict(int)
    for i, (check, replacement) in enumerate(results):
        if check.error:
            corrupt.append({"file": origins[i], "error": check.error})
            continue
        kinds[check.kind] += 1
        if replacement is not None:
            examples[i] = replacement
            to = replacement if isinstance(replacement, str) else "(in memory)"
            converted.append(
                {"file": origins[i], "mode": check.kind, "why": check.convert, "to": to}
            )
    keep = np.array([i for i, (c, _) in enumerate(results) if not c.error], dtype=np.int64)
    if corrupt and policy.corrupt == "error":
        shown = "\n  ".join(f"{c['file']}: {c['error']}" for c in corrupt[:10])
        more = f"\n  ... and {len(corrupt) - 10} more" if len(corrupt) > 10 else ""
        raise DataError(
            f"{len(corrupt)} undecodable or truncated image file(s):\n  {shown}{more}\n"
            "Fix or remove them, or set data.clean.corrupt: drop to skip them."
        )
    cleaned = Split(examples, split.labels, split.kind, list(origins)).subset(keep)
    digests = np.array([results[i][0].digest for i in keep], dtype=object)
    return cleaned, digests, {"corrupt": corrupt, "converted": converted, "modes": dict(kinds)}


def default_converted_dir(report_path: str | os.PathLike | None) -> Callable[[], Path]:
    """Beside the report when there is one (it lives with the run), else a temporary folder.

    The folder is made on first use only, so clean data leaves nothing behind.
    """
    made: list[Path] = []
    lock = threading.Lock()  # called from the checking threads

    def get() -> Path:
        with lock:
            if not made:
                if report_path is not None:
                    folder = Path(report_path).parent / "converted_images"
                    folder.mkdir(parents=True, exist_ok=True)
                else:
                    folder = Path(tempfile.mkdtemp(prefix="tltk-converted-"))
                made.append(folder)
            return made[0]

    return get


# --------------------------------------------------------------------------- duplicates


def check_duplicates(
    splits: dict[str, Split],
    digests: dict[str, np.ndarray],
    policy: CleanConfig,
    class_names: list[str] | None = None,
) -> tuple[dict[str, Split], dict]:
    """Report exact duplicates within splits, across splits (leakage) and with differing labels;
    apply `policy.leakage` (report / drop later copies / error)."""
    within, leakage, conflicts, drop = _find_duplicates(splits, digests, class_names)
    if leakage and policy.leakage == "error":
        shown = "\n  ".join(f"{p['kept']} == {p['copy']}" for p in leakage[:10])
        more = f"\n  ... and {len(leakage) - 10} more" if len(leakage) > 10 else ""
        raise DataError(
            f"{len(leakage)} exact duplicate(s) across splits (train/test leakage):\n"
            f"  {shown}{more}\nRemove the copies, or set data.clean.leakage: drop (drops them "
            "from val/test) or report."
        )
    if policy.leakage == "drop":
        for name, idx in drop.items():
            keep = np.setdiff1d(np.arange(len(splits[name])), idx)
            splits = {**splits, name: splits[name].subset(keep)}
    report = {
        "duplicates_within": within,
        "leakage": {
            "policy": policy.leakage,
            "pairs": leakage,
            "dropped": sum(map(len, drop.values())) if policy.leakage == "drop" else 0,
        },
        "label_conflicts": conflicts,
    }
    return splits, report


def _find_duplicates(
    splits: dict[str, Split], digests: dict[str, np.ndarray], class_names: list[str] | None
) -> tuple[dict, list[dict], list[dict], dict[str, list[int]]]:
    """Groups of equal examples within each split, leakage pairs (the first copy, in train, val,
    test order, is kept), label conflicts, and the indices of the later copies per split."""
    where: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name in _ordered(splits):
        for i, digest in enumerate(digests[name]):
            where[digest].append((name, i))
    within: dict[str, list[list[str]]] = defaultdict(list)
    leakage, conflicts = [], []
    drop: dict[str, list[int]] = defaultdict(list)
    for places in (p for p in where.values() if len(p) > 1):
        by_split: dict[str, list[int]] = defaultdict(list)
        for name, i in places:
            by_split[name].append(i)
        for name, idx in by_split.items():
            if len(idx) > 1:
                within[name].append([splits[name].origin(i) for i in idx])
        first_name, first_i = places[0]
        kept = splits[first_name].origin(first_i)
        for name, i in places:
            if name != first_name:
                pair = {"kept": kept, "copy": splits[name].origin(i)}
                leakage.append({**pair, "splits": f"{first_name}/{name}"})
                drop[name].append(i)
        labels = [label_name(splits[n].labels[i], class_names) for n, i in places]
        if len({str(x) for x in labels}) > 1:
            conflicts.append({"files": [splits[n].origin(i) for n, i in places], "labels": labels})
    return dict(within), leakage, conflicts, drop


def _ordered(splits: dict[str, Split]) -> list[str]:
    return sorted(splits, key=lambda s: SPLIT_PRIORITY.index(s) if s in SPLIT_PRIORITY else 99)
