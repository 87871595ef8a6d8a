"""`tltk data shard`: any tltk data source -> sharded TFRecords with a manifest, so that the
data checks run once per data set, not once per run.

    source (folder | csv | text | tfds | tfrecord) -> the modality's loader: every check, the
    seeded splits, data_report.json -> each split's examples in a seeded random order (a
    streamed tfds split: in its own order) -> shards of at most `shard_examples` records or
    `shard_mb` MB -> labels, content hashes -> tltk-shards.json (tltk/data/shard_manifest.py)

The folder is built beside OUT and renamed into place when complete, so OUT is never half
written, and an existing OUT is never replaced. A recipe then reads it with
`data: {source: tfrecord, path: OUT}`.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from tltk.data.assemble import split_counts
from tltk.data.errors import DataError
from tltk.data.parallel import progress_bar
from tltk.data.records import example_proto
from tltk.data.report import summary_check_counts
from tltk.data.shard_manifest import FORMAT, MANIFEST, VERSION, file_entry, remember_hashes
from tltk.data.stream_checks import StreamImageCheck, record_stream_checks
from tltk.data.types import LabelledData, Split
from tltk.io import atomic_directory, atomic_write_json
from tltk.recipe import Recipe, load_recipe

SHARD_EXAMPLES = 10_000
SHARD_MB = 100.0
"""A shard is closed at this many records or MB, whichever comes first: enough files to
shuffle and read in parallel, each large enough to read efficiently."""
STREAM_BATCH = 256
"""Records of a streamed split read from tf.data at once when writing it."""
TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".txt")


def shard_recipe(source: str, *, modality: str = "image", overrides=()) -> Recipe:
    """The recipe whose data `write_shards` shards: `source` is a recipe (.yaml), `tfds:NAME`,
    a folder (class folders) or a file (an image manifest, or texts with modality text).
    `overrides` are recipe keys (`data.val_fraction=0.2`, `head.type=multilabel`, `seed=1`)."""
    if source.endswith((".yaml", ".yml")):
        return load_recipe(source, overrides)
    if source.startswith("tfds:"):
        data = {"source": "tfds", "name": source[len("tfds:") :]}
    elif Path(source).is_dir():
        data = {"source": "folder", "path": source}
    elif Path(source).is_file():
        data = {"source": "text" if modality == "text" else "csv", "path": source}
    else:
        raise DataError(f"{source}: not a recipe, folder, file or tfds:NAME to shard")
    return load_recipe({"name": "shards", "modality": modality, "data": data}, overrides)


def write_shards(
    recipe: Recipe,
    out: str | Path,
    *,
    shard_examples: int = SHARD_EXAMPLES,
    shard_mb: float = SHARD_MB,
) -> Path:
    """Check, split and write the recipe's data as shards in the new folder `out`.

    Example:
        >>> recipe = shard_recipe("data/digits")  # doctest: +SKIP
        >>> write_shards(recipe, "data/digits_shards", shard_examples=500)  # doctest: +SKIP
    """
    from tltk.heads import get_head
    from tltk.modalities import get_modality

    if shard_examples < 1 or shard_mb <= 0:
        raise DataError("shard size: give at least 1 example and more than 0 MB per shard")
    out = Path(out)
    with atomic_directory(out) as tmp:
        report_path = tmp / "data_report.json"
        label_kind = get_head(recipe.head_type).label_kind
        data = get_modality(recipe.modality).load_data(
            recipe.data, seed=recipe.seed, label_kind=label_kind, report_path=report_path
        )
        limits = (shard_examples, int(shard_mb * 1024**2))
        checks = _stream_checks(data, recipe)
        splits = {
            name: _write_split(
                tmp, name, split, data, label_kind, recipe.seed, limits, checks.get(name)
            )
            for name, split in data.splits.items()
        }
        if checks:
            record_stream_checks(data.report, checks)
            atomic_write_json(report_path, data.report)  # with what the checks found
            _say_checked(checks)
        shutil.rmtree(tmp / "converted_images", ignore_errors=True)  # inside the shards now
        manifest = _manifest(recipe, data, label_kind, splits, report_path, limits)
        atomic_write_json(tmp / MANIFEST, manifest)
    remember_hashes(out, manifest)
    total = sum(s["count"] for s in manifest["splits"].values())
    files = sum(len(s["shards"]) for s in manifest["splits"].values())
    print(f"Wrote {total} examples in {files} shards to {out}")
    return out


def _stream_checks(data: LabelledData, recipe: Recipe) -> dict[str, StreamImageCheck]:
    """A check for each streamed image split: its images were not decoded when loading."""
    return {
        name: StreamImageCheck(recipe.data.clean)
        for name, split in data.splits.items()
        if split.streamed and split.records.example_kind == "bytes"
    }


def _say_checked(checks: dict[str, StreamImageCheck]) -> None:
    checked = sum(len(c.kept) + len(c.corrupt) for c in checks.values())
    corrupt = sum(len(c.corrupt) for c in checks.values())
    converted = sum(len(c.converted) for c in checks.values())
    print(f"Checked {checked} streamed images while writing: {corrupt} corrupt (left out), "
          f"{converted} converted to RGB PNG")  # fmt: skip


def _write_split(folder: Path, name: str, split: Split, data, label_kind, seed, limits,
                 check: StreamImageCheck | None) -> dict:  # fmt: skip
    order = _order(split, name, seed)
    labels = split.labels[order]
    digests, shards = [], []
    writer, count, size = None, 0, 0
    bar = progress_bar(len(split), f"writing {name} shards")
    for position, (example, origin) in enumerate(_examples(split, order)):
        if bar is not None:
            bar.update(1)
        if check is not None and (example := check(example, origin, position)) is None:
            continue
        if writer is None:
            path = folder / f"{name}-{len(shards):05d}.tfrecord"
            writer, count, size = tf.io.TFRecordWriter(str(path)), 0, 0
        data_bytes = example.encode("utf-8") if isinstance(example, str) else example
        digests.append(hashlib.blake2b(data_bytes, digest_size=16).hexdigest())
        record = example_proto(example, labels[position], label_kind, origin)
        writer.write(record)
        count, size = count + 1, size + len(record)
        if count >= limits[0] or size >= limits[1]:
            writer.close()
            shards.append((path, count))
            writer = None
    if writer is not None:
        writer.close()
        shards.append((path, count))
    if bar is not None:
        bar.close()
    if check is not None:
        check.refuse_corrupt()
        labels = labels[check.kept]  # the counts of the split as written
        counts = split_counts(labels, data.class_names, regression=label_kind == "value")
        data.report["counts"][name] = counts
    return _split_files(folder, name, shards, labels, np.array(digests, dtype="S32"), data)


def _order(split: Split, name: str, seed: int) -> np.ndarray:
    """In-memory splits: a seeded permutation, so that every shard mixes the classes; a
    streamed split keeps its order (reading it in any other would mean random access)."""
    if split.streamed:
        return np.arange(len(split))
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")
    return np.random.default_rng([seed, key]).permutation(len(split))


def _examples(split: Split, order: np.ndarray) -> Iterator[tuple[bytes | str, str]]:
    """(example as written: encoded bytes or text, origin) in `order`; files are read here."""
    if split.streamed:
        from tltk.data.record_stream import record_stream

        text = split.records.example_kind == "text"
        stream = record_stream(split, np.zeros(len(split))).batch(STREAM_BATCH)
        i = 0
        for block, _ in stream.as_numpy_iterator():  # a block at a time: far fewer Python
            for raw in block:  # round trips through tf.data than one per record
                yield (raw.decode("utf-8") if text else raw), split.origin(i)
                i += 1
        return
    for i in order:
        example = split.examples[i]
        if split.kind == "path":
            example = Path(example).read_bytes()
        yield (bytes(example) if split.kind == "bytes" else example), split.origin(int(i))


def _split_files(folder: Path, name: str, shards: list, labels, digests, data) -> dict:
    """Name the shards `NAME-i-of-n`, write labels and digests; the split's manifest entry."""
    entries = []
    for i, (path, count) in enumerate(shards):
        final = path.with_name(f"{name}-{i:05d}-of-{len(shards):05d}.tfrecord")
        path.rename(final)
        entries.append({**file_entry(final), "count": count})
    label_file, digest_file = folder / f"{name}.labels.npy", folder / f"{name}.digests.npy"
    np.save(label_file, np.asarray(labels), allow_pickle=False)
    np.save(digest_file, digests, allow_pickle=False)
    return {
        "count": sum(c for _, c in shards),
        **data.report["counts"].get(name, {}),
        "shards": entries,
        "labels": file_entry(label_file),
        "digests": file_entry(digest_file),
    }


def _manifest(recipe: Recipe, data: LabelledData, label_kind, splits, report_path, limits):
    from tltk import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tltk": __version__,
        "modality": recipe.modality,
        "example_kind": "text" if recipe.modality == "text" else "bytes",
        "label_kind": label_kind,
        "class_names": data.class_names,
        "seed": recipe.seed,
        "source": data.report["source"],
        "data": recipe.data.model_dump(mode="json"),
        "shard_limits": {"examples": limits[0], "bytes": limits[1]},
        "splits": splits,
        "checks": {"report": file_entry(report_path), "found": summary_check_counts(data.report)},
    }
