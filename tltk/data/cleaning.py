"""Check the files of a split before training starts: drop corrupt ones, convert those
TensorFlow decodes wrongly, and keep the content hash of every file (duplicates and leakage are
found from those by tltk/data/duplicates.py). What one file's bytes are is decided in
tltk/data/image_checks.py; this module runs that over a split, a block of files at a time.

Converted files become 8-bit RGB PNGs in a cache folder (named by the source's content hash, so
re-runs reuse them); the user's files are never modified. What checking a file found is kept
in the check cache (tltk/data/check_cache.py) under its path, size and times, so the next run
over unchanged files opens none of them.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tltk.data.check_cache import CheckCache, file_key
from tltk.data.duplicates import compact_digests
from tltk.data.errors import DataError
from tltk.data.image_checks import FileCheck, check_file, to_rgb_png
from tltk.data.parallel import parallel_map, progress_bar
from tltk.data.types import Split
from tltk.io import atomic_write_bytes
from tltk.recipe import CleanConfig


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


CHECK_BLOCK = 4096
"""Files checked (and their cache entries read and written) at once: what memory holds of the
checks is one block of full results plus 8 bytes (the content hash) per file checked."""


def inspect_split(
    split: Split,
    policy: CleanConfig,
    converted_dir: Callable[[], Path],
    cache: CheckCache | None = None,
) -> tuple[Split, np.ndarray, dict]:
    """Drop corrupt files, convert the ones TF misreads, hash all. Returns the cleaned split,
    its content digests (uint64, aligned with it) and the report entries (`cached`: how many
    files' checks came from `cache` unopened).

    `converted_dir` is called only when a file needs converting (it may create a folder).
    `cache` (files only, kind "image") remembers each file's check by path, size and times.
    Files go a block (CHECK_BLOCK) at a time; of each only what it found is kept.
    """
    inspect = _Inspector(split, converted_dir)
    threads, found = threads_for(split), _Found(len(split))
    bar = progress_bar(len(split), "checking images")
    try:
        for start in range(0, len(split), CHECK_BLOCK):
            block = range(start, min(start + CHECK_BLOCK, len(split)))
            found.add(block, _check_block(inspect, block, cache, threads))
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    cleaned, digests, report = _apply(split, found, policy)
    report["cached"] = found.cached
    return cleaned, digests, report


def _check_block(inspect: _Inspector, block: range, cache: CheckCache | None, threads: int):
    """(check, replacement) of each file of `block`; the cache's answers used, new ones put."""
    keys = _keys(inspect.split, block) if cache is not None else [None] * len(block)
    known = cache.get_many(k for k in keys if k) if cache is not None else {}

    def run(j: int) -> tuple[FileCheck, str | bytes | None]:
        stored = known.get(keys[j][0]) if keys[j] else None
        i = block[j]
        return inspect.reuse(i, FileCheck(**stored)) if stored else inspect(i)

    results = parallel_map(run, range(len(block)), threads=threads)
    if cache is not None:
        cache.put_many(
            (keys[j], asdict(check))
            for j, (check, _) in enumerate(results)
            if keys[j] and keys[j][0] not in known and block[j] not in inspect.unreadable
        )
    return results, len(known)


class _Found:
    """What the checks of a split found, compactly: a uint64 content hash per file, and for
    the few corrupt or converted files what the report says of them."""

    def __init__(self, n: int):
        self.digests = np.zeros(n, np.uint64)
        self.errors: dict[int, str] = {}
        self.converted: dict[int, tuple[FileCheck, str | bytes]] = {}
        self.kinds: dict[str, int] = defaultdict(int)
        self.cached = 0

    def add(self, block: range, checked: tuple[list, int]) -> None:
        results, cached = checked
        self.cached += cached
        self.digests[block.start : block.stop] = compact_digests(
            [c.digest if not c.error else "0" * 16 for c, _ in results]
        )
        for i, (check, replacement) in zip(block, results, strict=True):
            if check.error:
                self.errors[i] = check.error
                continue
            self.kinds[check.kind] += 1
            if replacement is not None:
                self.converted[i] = (check, replacement)


def _keys(split: Split, block: range) -> list:
    """The check cache's key of each file of `block` (None for in-memory bytes or a file that
    cannot be stat'ed: it is checked, and its failure reported, as without a cache)."""
    if split.kind != "path":
        return [None] * len(block)
    keys = []
    for path in split.examples[block.start : block.stop]:
        try:
            keys.append(file_key(str(path)))
        except OSError:
            keys.append(None)
    return keys


class _Inspector:
    """Checks one example (`__call__`), or reuses a remembered check (`reuse`): either way a
    file TF would misread is converted, into `converted_dir`, named by its content hash."""

    def __init__(self, split: Split, converted_dir: Callable[[], Path]):
        self.split, self.converted_dir = split, converted_dir
        self.unreadable: set[int] = set()
        """Examples that could not be read (not remembered: the next run tries again)."""

    def __call__(self, i: int) -> tuple[FileCheck, str | bytes | None]:
        try:
            data = read_bytes(self.split.examples[i], self.split.kind)
        except OSError as e:
            self.unreadable.add(i)
            return FileCheck(error=f"{type(e).__name__}: {e}"), None
        check = check_file(data)
        if not check.convert or check.error:
            return check, None
        return check, self._convert(check, data)

    def reuse(self, i: int, check: FileCheck) -> tuple[FileCheck, str | bytes | None]:
        if not check.convert or check.error:
            return check, None
        target = self.converted_dir() / f"{check.digest}.png"
        if target.exists():  # converted before, in this run's folder
            return check, str(target)
        return self(i)

    def _convert(self, check: FileCheck, data: bytes) -> str | bytes | None:
        try:
            png = to_rgb_png(data)
        except Exception as e:  # a mode Pillow reads but cannot convert: unusable
            check.error = f"cannot convert ({check.convert}): {type(e).__name__}: {e}"
            return None
        if self.split.kind == "bytes":
            return png
        target = self.converted_dir() / f"{check.digest}.png"  # content-named: re-runs reuse it
        if not target.exists():
            atomic_write_bytes(target, png)
        return str(target)


def _apply(split: Split, found: _Found, policy: CleanConfig) -> tuple[Split, np.ndarray, dict]:
    """The split without its corrupt files and with its converted ones, their digests, and
    what was found (or a DataError under `clean.corrupt: error`)."""
    corrupt = [{"file": split.origin(i), "error": e} for i, e in sorted(found.errors.items())]
    if corrupt and policy.corrupt == "error":
        shown = "\n  ".join(f"{c['file']}: {c['error']}" for c in corrupt[:10])
        more = f"\n  ... and {len(corrupt) - 10} more" if len(corrupt) > 10 else ""
        raise DataError(
            f"{len(corrupt)} undecodable or truncated image file(s):\n  {shown}{more}\n"
            "Fix or remove them, or set data.clean.corrupt: drop to skip them."
        )
    examples, origins, converted = split.examples, split.origins, []
    if found.converted:  # examples now name the converted files; origins the user's
        examples, origins = examples.copy(), split.origins_of(0, len(split))
    for i, (check, replacement) in sorted(found.converted.items()):
        examples[i] = replacement
        to = replacement if isinstance(replacement, str) else "(in memory)"
        converted.append({"file": origins[i], "mode": check.kind, "why": check.convert, "to": to})
    cleaned = Split(examples, split.labels, split.kind, origins)
    report = {"corrupt": corrupt, "converted": converted, "modes": dict(found.kinds)}
    if not found.errors:  # the usual case: kept whole, the digests not copied
        return cleaned, found.digests, report
    # A mask, not np.setdiff1d: that sorts a copy of 0..N-1 (25 B a file at its peak, freed
    # memory the allocator then keeps).
    kept = np.ones(len(split), bool)
    kept[list(found.errors)] = False
    keep = np.flatnonzero(kept)
    return cleaned.subset(keep), found.digests[keep], report


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
