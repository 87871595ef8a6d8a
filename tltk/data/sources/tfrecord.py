"""TFRecord files, streamed: shards written by `tltk data shard`, or anyone's TFRecords of
`tf.train.Example`s with an encoded image (or a text) and a label.

A shard folder (with `tltk-shards.json`) brings its own splits, labels, content hashes and
checks: the files are verified against the manifest and its checks are trusted. Other files
get one tf.data pass that reads the label feature and fingerprints each example (for
splitting and the duplicate checks); their images are decoded in training only.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import tensorflow as tf

from tltk.data.errors import DataError
from tltk.data.labels import one_hot
from tltk.data.records import EXAMPLE_FEATURES, TFRecordFiles, scan_records
from tltk.data.shard_manifest import MANIFEST, is_shard_folder, load_splits, read_manifest
from tltk.data.shard_manifest import verify_files as verify_shards
from tltk.data.splits import canonical_split
from tltk.data.types import SourceData, Split
from tltk.recipe import DataConfig

RECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")
_KIND_OF = {"bytes_list": "bytes", "int64_list": "int", "float_list": "float"}


def read_image_records(cfg: DataConfig, label_kind: str) -> SourceData:
    """Encoded images and their labels from TFRecord files (see the module)."""
    return _read(cfg, label_kind, "bytes")


def read_text_records(cfg: DataConfig, label_kind: str) -> SourceData:
    """Texts and their labels from TFRecord files (see the module)."""
    return _read(cfg, label_kind, "text")


def _read(cfg: DataConfig, label_kind: str, example_kind: str) -> SourceData:
    if not cfg.path:
        raise DataError("data.path is required for data.source tfrecord (a shard folder, or "
                        "TFRecord files: a file, a folder or a glob)")  # fmt: skip
    root = Path(cfg.path).expanduser()
    if root.is_dir() and is_shard_folder(root):
        return _read_shards(cfg, root, label_kind, example_kind)
    return _read_files(cfg, root, label_kind, example_kind)


def _read_shards(cfg: DataConfig, root: Path, label_kind: str, example_kind: str) -> SourceData:
    manifest = read_manifest(root)
    where = root / MANIFEST
    if manifest["example_kind"] != example_kind:
        raise DataError(
            f"{where}: shards of {manifest['modality']} data; set modality: "
            f"{manifest['modality']} to train on them"
        )
    if cfg.splits:
        raise DataError(f"data.splits: {root} holds its own splits "
                        f"({', '.join(manifest['splits'])}); remove data.splits")  # fmt: skip
    verify_shards(root, manifest, cfg.verify_shards)
    stored = manifest["label_kind"]
    if stored != label_kind and not (stored == "class" and label_kind == "classes"):
        raise DataError(
            f"{where}: the shards hold {stored!r} labels but this recipe's head needs "
            f"{label_kind!r} ones; write shards for this head type (tltk data shard --set ...)"
        )
    names = manifest["class_names"]
    splits = {}
    for name, (records, labels) in load_splits(root, manifest).items():
        if stored != label_kind:
            labels = one_hot(labels, len(names))
        splits[name] = Split(np.arange(records.total), labels, "records", records=records)
    description = {
        "type": "tfrecord",
        "path": str(root),
        "shards": sum(len(s["shards"]) for s in manifest["splits"].values()),
        "made_from": manifest["source"],
    }
    checked = {"manifest": str(where), "written": manifest["created"], **manifest["checks"]}
    return SourceData(names, splits, description, checked=checked)


def _read_files(cfg: DataConfig, root: Path, label_kind: str, example_kind: str) -> SourceData:
    feature = cfg.example_feature or EXAMPLE_FEATURES[example_kind]
    files = _record_files(cfg, root)
    first = next((f for fs in files.values() for f in fs), None)
    label_dtype = _probe(first, feature, cfg.label_column)
    scans = {split: _scan(paths, feature, cfg.label_column, label_dtype, example_kind)
             for split, paths in files.items()}  # fmt: skip
    class_names = _class_names(scans, label_dtype, label_kind, cfg.label_column)
    splits, dropped, bad = {}, [], []
    for split, (records, scan) in scans.items():
        labels, missing = _labels(records, scan, label_kind, label_dtype, class_names)
        empty = scan["empty"] if example_kind == "text" else np.zeros(records.total, bool)
        bad += [records.origin(int(g)) for g in np.flatnonzero(scan.get("bad", []))]
        reasons = {int(g): "empty text" for g in np.flatnonzero(empty)}
        reasons.update({int(g): f"missing label ({cfg.label_column!r})" for g in missing})
        dropped += [{"origin": records.origin(g), "reason": r} for g, r in sorted(reasons.items())]
        kept = np.setdiff1d(np.arange(records.total), list(reasons))
        splits[split] = Split(kept, labels[kept], "records", records=records)
    shown = ", ".join(f"{s}: {len(f)} file(s)" for s, f in files.items())
    description = {"type": "tfrecord", "path": str(root), "files": shown}
    return SourceData(class_names, splits, description, {"dropped": dropped, "bad_encoding": bad})


def _record_files(cfg: DataConfig, root: Path) -> dict[str, list[str]]:
    """split -> its files: `data.splits` patterns (relative to a folder `path`), else `path`
    itself (a file, a folder of TFRecord files, or a glob) as train."""
    patterns = {canonical_split(k, "data.splits"): v for k, v in cfg.splits.items()}
    base = root if root.is_dir() else Path()
    patterns = {s: str(base / Path(v).expanduser()) for s, v in patterns.items()} or {
        "train": str(root)
    }
    out = {}
    for split, pattern in patterns.items():
        if Path(pattern).is_dir():
            found = [str(p) for p in sorted(Path(pattern).iterdir())
                     if p.suffix.lower() in RECORD_SUFFIXES or ".tfrecord" in p.name]  # fmt: skip
        else:
            found = sorted(glob.glob(pattern))
        if not found:
            key = f"data.splits.{split}" if cfg.splits else "data.path"
            raise DataError(f"{key}: no TFRecord files at {pattern}; give a shard folder, a "
                            "file, a folder of .tfrecord files or a glob")  # fmt: skip
        out[split] = found
    return out


def _probe(path: str, feature: str, label: str) -> str:
    """The label feature's kind (bytes, int, float), read from the first record; a DataError
    naming the features there when one is missing."""
    first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    if first is None:
        raise DataError(f"{path}: no records")
    try:
        example = tf.train.Example.FromString(first.numpy())
    except Exception as e:  # protobuf raises DecodeError for what is not an Example
        raise DataError(f"{path}: its records are not tf.train.Example protos ({e})") from None
    present = dict(example.features.feature)
    for key, what in ((feature, "data.example_feature"), (label, "data.label_column")):
        if key not in present:
            raise DataError(f"{path}: no feature {key!r} ({what}); its records have "
                            f"{sorted(present)}")  # fmt: skip
    return _KIND_OF[present[label].WhichOneof("kind")]


def _scan(paths: list[str], feature: str, label: str, label_dtype: str, example_kind: str):
    """Records of `paths` and one pass over their labels and hashes: one tf.data pipeline
    over all the files in order (one per file cost a second or more each, tracing its
    functions again), each record tagged with its file so the files' counts come along."""
    dtype = {"bytes": tf.string, "int": tf.int64, "float": tf.float32}[label_dtype]
    spec = {feature: tf.io.FixedLenFeature([], tf.string), label: tf.io.RaggedFeature(dtype)}
    names = tf.constant(paths, tf.string)

    def read_file(k):
        return tf.data.TFRecordDataset(names[k]).map(lambda record: (k, record))

    def parse(k, record):
        parsed = tf.io.parse_single_example(record, spec)
        return parsed[feature], parsed[label], k

    files = tf.data.Dataset.range(len(paths))
    ds = files.flat_map(read_file).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    scan = scan_records(ds, text=example_kind == "text")
    counts = np.bincount(scan.pop("files"), minlength=len(paths)).tolist()
    records = TFRecordFiles(paths, counts, example_kind=example_kind, example_feature=feature,
                            digests=scan["digests"])  # fmt: skip
    return records, scan


def _class_names(scans: dict, label_dtype: str, label_kind: str, label: str) -> list[str]:
    """Text labels: their sorted names; integer labels: "0".."K-1"; regression: the feature."""
    if label_kind == "value":
        return [label]
    if label_dtype == "float":
        raise DataError(f"label feature {label!r} holds floats: a regression target; set "
                        "head.type: regression, or store class ids or names")  # fmt: skip
    values = np.concatenate([scan["label_values"] for _, scan in scans.values()])
    if label_dtype == "bytes":
        return sorted({v.decode("utf-8") for v in np.unique(values)})
    return [str(i) for i in range(int(values.max()) + 1)] if len(values) else []


def _labels(records, scan: dict, label_kind: str, label_dtype: str, class_names: list[str]):
    """The split's labels by gid, and the gids that have none."""
    values, lengths = scan["label_values"], scan["label_lengths"]
    missing = np.flatnonzero(lengths == 0)
    if label_kind != "classes" and np.any(lengths > 1):
        gid = int(np.flatnonzero(lengths > 1)[0])
        raise DataError(f"{records.origin(gid)}: {int(lengths[gid])} labels; set "
                        "data.multi_label: true for several labels per example")  # fmt: skip
    if label_kind == "value":
        out = np.zeros(records.total, np.float32)
        out[lengths == 1] = values
        return out, missing
    if label_dtype == "bytes":
        index = {n.encode("utf-8"): i for i, n in enumerate(class_names)}
        values = np.array([index[v] for v in values], dtype=np.int64)
    if label_kind == "class":
        out = np.zeros(records.total, np.int64)
        out[lengths == 1] = values
        return out, missing
    out = np.zeros((records.total, len(class_names)), np.float32)
    out[np.repeat(np.arange(records.total), lengths), values] = 1.0
    return out, missing
