"""The shard folder `tltk data shard` writes, and what a run reads of it.

    OUT/tltk-shards.json       the manifest (this module's format), written last
    OUT/train-00000-of-00012.tfrecord ...   tf.train.Example records (tltk/data/records.py)
    OUT/train.labels.npy       the labels of each split, in record order
    OUT/train.digests.npy      the content hash of each record (duplicate and leakage checks)
    OUT/data_report.json       the data checks' full report, run once when the shards were made

The manifest lists every other file with its size and sha256, the counts per split and class,
the class names and label kind, the source and seed it was made from, and a summary of the
checks. A run verifies the files against it (sizes always; sha256 remembered per file by the
check cache, so each file is hashed once) and then trusts its checks instead of repeating them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tltk.data.check_cache import file_key, maybe_cache
from tltk.data.duplicates import compact_digests
from tltk.data.errors import DataError
from tltk.data.parallel import parallel_map
from tltk.data.records import TFRecordFiles

MANIFEST = "tltk-shards.json"
FORMAT = "tltk-shards"
VERSION = 1
HASH_CHUNK = 4 * 1024**2


def is_shard_folder(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict:
    """A manifest entry for a file in the folder: its name, size and sha256."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def read_manifest(folder: Path) -> dict:
    """The folder's manifest; a DataError naming the file and the fix if it is not one."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable shard manifest ({e}); write the shards again "
                        "with tltk data shard") from None  # fmt: skip
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a tltk shard manifest (format is not {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise DataError(
            f"{path}: shard format version {manifest.get('version')}, this tltk reads "
            f"{VERSION}; write the shards again with this version's tltk data shard"
        )
    return manifest


def listed_files(manifest: dict) -> list[dict]:
    """Every file entry of the manifest: shards, labels and digests of each split, the report."""
    entries = [manifest["checks"]["report"]]
    for split in manifest["splits"].values():
        entries += [*split["shards"], split["labels"], split["digests"]]
    return entries


def verify_files(folder: Path, manifest: dict, mode: str = "hash") -> None:
    """Each listed file exists with its size, and (`mode` "hash") its sha256: a DataError
    naming the first that differs. Hashes of unchanged files come from the check cache."""
    entries = listed_files(manifest)
    for entry in entries:
        path = folder / entry["file"]
        size = path.stat().st_size if path.is_file() else None
        if size != entry["bytes"]:
            found = "is missing" if size is None else f"has {size} bytes"
            _changed(path, f"{found}, the manifest says {entry['bytes']}")
    if mode == "size":
        return
    paths = [str(folder / e["file"]) for e in entries]
    with maybe_cache("sha256", True) as cache:
        keys = [file_key(p) for p in paths]
        known = cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k[0] not in known]
        hashes = parallel_map(
            lambda i: sha256_file(paths[i]), todo, threads=os.cpu_count() or 1,
            desc="verifying shards",
        )  # fmt: skip
        cache.put_many((keys[i], h) for i, h in zip(todo, hashes, strict=True))
        known.update({keys[i][0]: h for i, h in zip(todo, hashes, strict=True)})
    for entry, key in zip(entries, keys, strict=True):
        if known[key[0]] != entry["sha256"]:
            _changed(folder / entry["file"], "its sha256 differs from the manifest's")


def remember_hashes(folder: Path, manifest: dict) -> None:
    """Put the sha256 of every listed file into the check cache (the writer just computed
    them), so the first run on fresh shards hashes nothing."""
    with maybe_cache("sha256", True) as cache:
        entries = listed_files(manifest)
        cache.put_many((file_key(str(folder / e["file"])), e["sha256"]) for e in entries)


def _changed(path: Path, what: str) -> None:
    raise DataError(
        f"{path} {what}: the shards changed since tltk data shard wrote them. Write them "
        "again (or copy the whole folder again)"
    )


def load_digests(path: Path, block: int = 1 << 16) -> np.ndarray:
    """A split's content hashes (32 hex digits each on disk) as uint64 (`compact_digests`),
    read a block at a time: memory holds the result and one block, never the hex strings."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        shape, _, dtype = read_header(f) if read_header else ((), False, np.dtype(bool))
        if dtype.kind != "S" or len(shape) != 1:
            _changed(path, f"holds {dtype} {shape}, not one hex digest a record")
        out = np.empty(shape[0], np.uint64)
        for start in range(0, shape[0], block):
            count = min(block, shape[0] - start)
            hexes = np.frombuffer(f.read(count * dtype.itemsize), dtype)
            out[start : start + count] = compact_digests(hexes)
    return out


def load_splits(folder: Path, manifest: dict) -> dict[str, tuple[TFRecordFiles, np.ndarray]]:
    """split -> (its records, its labels), as the manifest lists them."""
    out = {}
    for name, split in manifest["splits"].items():
        shards = split["shards"]
        digests = load_digests(folder / split["digests"]["file"])
        records = TFRecordFiles(
            [folder / s["file"] for s in shards],
            [s["count"] for s in shards],
            example_kind=manifest["example_kind"],
            digests=digests,
        )
        labels = np.load(folder / split["labels"]["file"], allow_pickle=False)
        if len(labels) != records.total or len(digests) != records.total:
            _changed(folder / split["labels"]["file"], f"does not hold {records.total} rows")
        out[name] = (records, labels)
    return out
