"""Where a run's memory goes per example: RSS and Python (tracemalloc) memory after each stage
of loading and streaming one data set, in one process.

    nice -n 5 python benchmarks/bench_data_memory.py FORM PATH [--tracemalloc]

FORM is `folder` (class folders) or `tfrecord` (TFRecord files, or a `tltk data shard` folder),
e.g. those benchmarks/scale_data.py makes (`make_folder`, `make_records`, `make_shards`).
Stages, in the order a run meets them: TensorFlow's runtime start (the first op), the source
read (listing, label pass, manifest), the file checks, splitting and the duplicate checks,
RUN/splits.csv, class weights, building the training stream, its first batch, then 50
batches. For each: seconds, RSS after it (and its anonymous and file-backed parts), the peak
RSS during it (VmHWM, reset before each stage), SQLite's own peak during it, and with
`--tracemalloc` the Python memory kept after it and its peak during it (numpy arrays and
Python objects; TensorFlow's C++ memory is not traced).

`--trim` also records the RSS after glibc's `malloc_trim(0)` following each stage (what of
the RSS is memory freed but still held by the allocator); `--load-only` stops after loading;
`--check-threads N` runs the file checks on N threads whatever the files' size.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import sys
import time
import tracemalloc

BATCH = 64
SIZE = 28


def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024  # kB -> MB
    return float("nan")


def _sqlite_peak_mb(reset: bool = False) -> float:
    """The most SQLite's allocator held (the check cache's page cache) since the last reset,
    process-wide; `reset` starts a new count."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")  # the library Python's sqlite3 module links
    except OSError:
        return float("nan")
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    return round(lib.sqlite3_memory_highwater(int(reset)) / 1024**2, 2)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset VmHWM to the current RSS
        f.write("5")
    _sqlite_peak_mb(reset=True)


class Stages:
    """Records one row per stage: seconds, RSS after, peak RSS during, Python memory."""

    def __init__(self, traced: bool, trim: bool = False):
        self.traced, self.trim, self.rows = traced, trim, []

    def run(self, name: str, fn, *args, **kwargs):
        _reset_peak()
        if self.traced:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        row = {
            "stage": name,
            "s": round(time.perf_counter() - start, 2),
            "rss_mb": round(_status("VmRSS"), 1),
            "peak_rss_mb": round(_status("VmHWM"), 1),
            # anonymous (heap, arrays) and file-backed (library code paged in) parts of the RSS
            "anon_mb": round(_status("RssAnon"), 1),
            "file_mb": round(_status("RssFile"), 1),
            "sqlite_peak_mb": _sqlite_peak_mb(),
        }
        if self.traced:
            now, peak = tracemalloc.get_traced_memory()
            row.update(
                py_kept_mb=round((now - before) / 1024**2, 2),
                py_peak_mb=round((peak - before) / 1024**2, 2),
                py_total_mb=round(now / 1024**2, 2),
            )
        if self.trim:  # hand the allocator's free pages back to the system, then look again
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            row["rss_trimmed_mb"] = round(_status("VmRSS"), 1)
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        return out

    def wrap(self, module, name: str, label: str) -> None:
        """Make `module.name` a stage of its own wherever the loader calls it."""
        fn = getattr(module, name)

        @functools.wraps(fn)
        def staged(*args, **kwargs):
            return self.run(label, fn, *args, **kwargs)

        setattr(module, name, staged)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("form", choices=["folder", "tfrecord"])
    ap.add_argument("path")
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--out", default=os.devnull, help="RUN/splits.csv goes here")
    ap.add_argument("--trim", action="store_true", help="RSS after malloc_trim(0) too")
    ap.add_argument("--load-only", action="store_true", help="stop after loading")
    ap.add_argument("--check-threads", type=int, help="threads of the file checks")
    args = ap.parse_args()
    stages = Stages(args.tracemalloc, args.trim)
    import keras  # noqa: F401  (the imports are not a stage)
    import tensorflow as tf

    import tltk.data.assemble as assemble
    import tltk.data.cleaning as cleaning
    import tltk.data.images as images
    from tltk.data import build_pipeline, class_weights, load_image_data
    from tltk.data.report import write_split_manifest
    from tltk.modalities.image import ImagePreprocessor
    from tltk.recipe import DataConfig

    print(json.dumps({"stage": "imported", "rss_mb": round(_status("VmRSS"), 1)}), flush=True)
    if args.tracemalloc:
        tracemalloc.start()
    stages.run("TensorFlow's runtime", lambda: (tf.constant(1) + 1).numpy())  # device set-up
    stages.wrap(images, "read_source", "source read")
    stages.wrap(images, "_inspect", "file checks / digests")
    stages.wrap(assemble, "check_duplicates", "duplicate checks")
    if args.check_threads:
        cleaning.threads_for = lambda split: args.check_threads
    cfg = DataConfig(source=args.form, path=args.path, val_fraction=0.05, test_fraction=0.0)
    data = stages.run("load (all of the above)", load_image_data, cfg, seed=0)
    if args.load_only:
        return
    stages.run("splits.csv", write_split_manifest, data, args.out)
    train = data.splits["train"]
    stages.run("class weights", class_weights, train.labels, data.num_classes)
    ds = stages.run(
        "build_pipeline", build_pipeline, train, num_classes=data.num_classes,
        preprocessor=ImagePreprocessor(SIZE), batch_size=BATCH, training=True, seed=0,
        cache="none",
    )  # fmt: skip
    batches = iter(ds)
    stages.run("first batch", next, batches)
    stages.run("50 batches", lambda: [next(batches) for _ in range(50)])
    print(json.dumps({"examples": sum(map(len, data.splits.values())), "form": args.form}))


if __name__ == "__main__":
    sys.exit(main())
