"""The data sets benchmarks/bench_data_scale.py measures: the 8,000 Fashion-MNIST training
PNGs of data/fashion_mnist repeated to N examples, as class folders, plain TFRecord files and
shard folders.

Copy k of an image differs in its bytes so that the duplicate checks run as on real data and
find nothing: `copies="reencode"` sets pixel (0, 0) = k % 256 and (0, 1) = k // 256 and
re-encodes the PNG; `copies="tail"` appends k after the PNG's IEND chunk (same pixels, other
bytes), which skips the encoding that dominates making a million examples here. Labels are
the image's class.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

SHARD_EXAMPLES = 10_000


def base_images(folder: Path) -> list[tuple[object, str]]:
    """(pixels as a uint8 array, class name, PNG bytes) of every PNG in the class folders,
    shuffled."""
    import numpy as np
    from PIL import Image

    out = []
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(cls.glob("*.png")):
            pixels = np.array(Image.open(f).convert("L"))
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            out.append((pixels, cls.name, buffer.getvalue()))
    order = np.random.default_rng(0).permutation(len(out))  # classes mixed in any prefix
    return [out[i] for i in order]


def examples(base: list, n: int, copies: str = "reencode"):
    """(png bytes, class name, index) of example i: base image i % len(base), copy i // len.

    `copies` "reencode": the copy's pixels (0, 0) and (0, 1) hold the copy number, re-encoded;
    "tail": the base PNG with the copy number appended after its IEND chunk (decoders stop at
    IEND, so the pixels are the base image's; the bytes, hence the content hash, differ), which
    skips the encoding that dominates making a million examples on this machine."""
    from PIL import Image

    for i in range(n):
        pixels, cls, png = base[i % len(base)]
        copy = i // len(base)
        if copies == "tail":
            yield (png + copy.to_bytes(4, "little") if copy else png), cls, i
            continue
        if copy:
            pixels = pixels.copy()
            pixels[0, 0], pixels[0, 1] = copy % 256, copy // 256
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        yield buffer.getvalue(), cls, i


def make_folder(base: list, n: int, out: Path, copies: str) -> None:
    for png, cls, i in examples(base, n, copies):
        (out / cls).mkdir(parents=True, exist_ok=True)
        (out / cls / f"{i}.png").write_bytes(png)


def make_records(base: list, n: int, raw: Path, copies: str) -> float:
    """Plain TFRecord files of the examples (tltk's feature names, 10 or 100 files); seconds."""
    import tensorflow as tf

    from tltk.data.records import example_proto

    start = time.perf_counter()
    raw.mkdir(parents=True)
    classes = sorted({cls for _, cls, _ in base})
    files = 100 if n >= 100_000 else 10
    writers = [tf.io.TFRecordWriter(str(raw / f"part-{k:03d}.tfrecord")) for k in range(files)]
    for png, cls, i in examples(base, n, copies):
        writers[i % files].write(example_proto(png, classes.index(cls), "class", f"{cls}/{i}"))
    for w in writers:
        w.close()
    return time.perf_counter() - start


def make_shards(raw: Path, out: Path) -> float:
    """`write_shards` (what `tltk data shard` runs) of the TFRecord files; its seconds."""
    from tltk.data.shards import write_shards
    from tltk.recipe import load_recipe

    recipe = load_recipe(
        {"name": "scale", "data": {"source": "tfrecord", "path": str(raw)}, "seed": 0},
        ["data.val_fraction=0.05", "data.test_fraction=0.0"],
    )
    start = time.perf_counter()
    write_shards(recipe, out)
    return time.perf_counter() - start


def replicate_shards(base: list, n: int, out: Path, template: Path, copies: str) -> float:
    """A shard folder of `n` examples in the format of `template` (one `write_shards` wrote),
    written here directly: its per-record Python check and proto building (~0.5 ms a record
    here) would take over an hour for a million. The records are tltk's (`example_proto`),
    their labels and blake2b digests computed as the writer computes them; every 20th example
    goes to val; the checks' report and summary are the template's (these are copies of its
    checked base images). Seconds taken."""
    import hashlib

    import numpy as np
    import tensorflow as tf

    from tltk.data.records import example_proto
    from tltk.data.shard_manifest import MANIFEST, file_entry, remember_hashes

    start = time.perf_counter()
    manifest = json.loads((template / MANIFEST).read_text())
    classes = sorted({cls for _, cls, _ in base})
    out.mkdir(parents=True)
    shutil.copyfile(template / "data_report.json", out / "data_report.json")
    names = {"train": [], "val": []}
    labels = {"train": [], "val": []}
    digests = {"train": [], "val": []}
    writers: dict[str, tf.io.TFRecordWriter] = {}
    for png, cls, i in examples(base, n, copies):
        split = "val" if i % 20 == 0 else "train"
        k = len(labels[split])
        if k % SHARD_EXAMPLES == 0:
            if split in writers:
                writers[split].close()
            names[split].append(out / f"{split}-{k // SHARD_EXAMPLES:05d}.tfrecord")
            writers[split] = tf.io.TFRecordWriter(str(names[split][-1]))
        label = classes.index(cls)
        writers[split].write(example_proto(png, label, "class", f"{cls}/{i}"))
        labels[split].append(label)
        digests[split].append(hashlib.blake2b(png, digest_size=16).hexdigest())
    for w in writers.values():
        w.close()
    splits = {}
    for split, paths in names.items():
        entries = []
        for j, path in enumerate(paths):
            final = path.with_name(f"{split}-{j:05d}-of-{len(paths):05d}.tfrecord")
            path.rename(final)
            count = min(SHARD_EXAMPLES, len(labels[split]) - j * SHARD_EXAMPLES)
            entries.append({**file_entry(final), "count": count})
        ids = np.array(labels[split], dtype=np.int64)
        np.save(out / f"{split}.labels.npy", ids, allow_pickle=False)
        np.save(out / f"{split}.digests.npy", np.array(digests[split], "S32"), allow_pickle=False)
        per_class = np.bincount(ids, minlength=len(classes))
        splits[split] = {
            "count": len(ids), "total": len(ids),
            "per_class": {str(c): int(m) for c, m in enumerate(per_class)},
            "shards": entries,
            "labels": file_entry(out / f"{split}.labels.npy"),
            "digests": file_entry(out / f"{split}.digests.npy"),
        }  # fmt: skip
    manifest["splits"] = splits
    (out / MANIFEST).write_text(json.dumps(manifest))
    remember_hashes(out, manifest)  # as write_shards does
    return time.perf_counter() - start
