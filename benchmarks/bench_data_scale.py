"""Does memory stay flat as the data grows? One training run per (form, size), each in its own
process: image folders, plain TFRecord files and `tltk data shard` shards of 10k to 1M examples.

    # folders and shards up to 100k, plain TFRecords up to 1M (a million files as a folder:
    # add --folder-max 1000000; writing them took 9 minutes here, their first checks 25)
    nice -n 5 python benchmarks/bench_data_scale.py --sizes 10000 100000 \
        --steps 300 --work /tmp/tltk-data-scale
    nice -n 5 python benchmarks/bench_data_scale.py --sizes 10000 100000 1000000 \
        --folder-max 0 --shards-max 0 --copies tail --steps 300 --work /tmp/tltk-data-scale
    # shards of 10k to 1M (above --write-shards-max: `replicate_shards`, see there)
    nice -n 5 python benchmarks/bench_data_scale.py --sizes 10000 100000 1000000 \
        --folder-max 0 --records-max 0 --copies tail --steps 300

Data (made by benchmarks/scale_data.py): the 8,000 Fashion-MNIST training PNGs of
data/fashion_mnist repeated, each copy byte-distinct (`--copies`). Forms: class folders of PNG
files (source `folder`: every check on the first run, the check cache's answers on the
second); TFRecord files of tf.train.Example (source `tfrecord`: a label-and-fingerprint pass
over the records each run); shards written from those files by `write_shards` (`tltk data
shard`; the run trusts the manifest).

Each run: import, load the data with tltk, build the training stream with
`build_pipeline(cache="none")` (the default shuffle window of a streamed split), and train a
tiny conv net (Conv 8 -> pool -> Dense 10, 28 px) for `--steps` steps of 64 (or one epoch if
that is fewer), so the data path, not the model, sets the pace. Reported: peak RSS of the
process (VmHWM), its CPU seconds (`os.wait4`), seconds from process start to the imports done,
to the data loaded and to the end of the first step, and img/s over the steps after the first
10. An epoch of the larger sets is extrapolated from img/s (`epoch_s_estimate`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.scale_data import (  # noqa: E402
    base_images,
    make_folder,
    make_records,
    make_shards,
    replicate_shards,
)

BATCH = 64
SIZE = 28
WARMUP_STEPS = 10


def child(form: str, path: str, steps: int, started: float) -> dict:
    """One run (in its own process): load, stream, train `steps` steps; what it measured."""
    import keras
    import tensorflow as tf

    from tltk.data import build_pipeline, load_image_data
    from tltk.modalities.image import ImagePreprocessor
    from tltk.recipe import DataConfig

    imported = time.time()
    source = "folder" if form == "folder" else "tfrecord"  # shards bring their train and val
    cfg = DataConfig(source=source, path=path, val_fraction=0.05, test_fraction=0.0)
    data = load_image_data(cfg, seed=0)
    loaded = time.time()
    train = data.splits["train"]
    ds = build_pipeline(
        train, num_classes=len(data.class_names), preprocessor=ImagePreprocessor(SIZE),
        batch_size=BATCH, training=True, seed=0, cache="none",
    )  # fmt: skip
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(data.class_names), activation="softmax"),
    ])  # fmt: skip
    model.compile("adam", "categorical_crossentropy")
    epoch_steps = -(-len(train) // BATCH)
    steps = min(steps, epoch_steps)
    stamps: list[float] = []
    stamp = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: stamps.append(
        time.time()))  # fmt: skip
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[stamp])
    timed = stamps[WARMUP_STEPS:]
    rate = (len(timed) - 1) * BATCH / (timed[-1] - timed[0]) if len(timed) > 1 else float("nan")
    del tf
    return {
        "train_examples": len(train),
        "steps": steps,
        "epoch_steps": epoch_steps,
        "import_s": round(imported - started, 2),
        "load_s": round(loaded - imported, 2),
        "first_step_s": round(stamps[0] - started, 2),
        "img_per_s": round(rate, 1),
        "epoch_s_estimate": round(len(train) / rate, 1),
        "cached_checks": data.report.get("cached", 0),
        "checks_trusted": bool(data.report.get("inspection", {}).get("trusted")),
        "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
    }


def _peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM). Not the child's `ru_maxrss` from `os.wait4`: Linux
    carries the parent's RSS at fork time into it, so a parent that had loaded TensorFlow set
    a floor under every child's number."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


def run_child(form: str, path: Path, steps: int, env: dict) -> dict:
    """`child` in a new process; its result with its CPU seconds (os.wait4)."""
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", form, str(path), "--steps", str(steps),
         "--started", repr(started)],
        stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{form} {path}: exit {proc.returncode}\n{out[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--folder-max", type=int, default=100_000)
    ap.add_argument("--shards-max", type=int, default=1_000_000)
    ap.add_argument("--records-max", type=int, default=1_000_000, help="plain TFRecord runs")
    ap.add_argument(
        "--write-shards-max",
        type=int,
        default=100_000,
        help="larger shard folders: `replicate_shards` of a 10k write_shards one",
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data", default="data/fashion_mnist/train")
    ap.add_argument("--work", default="/tmp/tltk-data-scale")
    ap.add_argument("--copies", choices=["reencode", "tail"], default="reencode")
    ap.add_argument("--no-folder-warm", action="store_true", help="one folder run, not two")
    ap.add_argument("--child", nargs=2, metavar=("FORM", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.steps, args.started)))
        return
    # SIGTERM and SIGINT end the run through the `finally` below, which deletes the scratch
    # data (an interrupt was seen to be lost once TensorFlow was loaded).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(1))
    work = Path(args.work)
    if work.exists():
        sys.exit(f"{work} exists; give another --work or remove it")
    env = {**os.environ, "TLTK_CHECKS_CACHE": str(work / "checks.sqlite3")}
    os.environ.update(env)  # write_shards remembers its hashes in the same cache
    base = base_images(Path(args.data))
    print(f"{len(base)} base images from {args.data}; batch {BATCH}, {SIZE} px", flush=True)
    try:
        for n in args.sizes:
            runs = []
            if n <= args.folder_max:
                folder = work / f"folder-{n}"
                start = time.perf_counter()
                make_folder(base, n, folder, args.copies)
                print(f"{n}: folder written in {time.perf_counter() - start:.0f} s", flush=True)
                runs.append(("folder (checks)", folder))
                if not args.no_folder_warm:
                    runs.append(("folder (cache warm)", folder))
            raw = work / f"records-{n}"
            replicated = n > args.write_shards_max
            if n <= args.records_max or (n <= args.shards_max and not replicated):
                seconds = make_records(base, n, raw, args.copies)
                print(f"{n}: TFRecord files written in {seconds:.0f} s", flush=True)
            if n <= args.records_max:
                runs.append(("tfrecord files", raw))
            if n <= args.shards_max:
                shards = work / f"shards-{n}"
                if not replicated:
                    seconds = make_shards(raw, shards)
                else:
                    template = work / "template-shards"
                    if not template.exists():
                        make_records(base, 10_000, work / "template-records", args.copies)
                        make_shards(work / "template-records", template)
                    seconds = replicate_shards(base, n, shards, template, args.copies)
                size_mb = sum(f.stat().st_size for f in shards.iterdir()) / 1024**2
                how = "replicate_shards" if replicated else "write_shards"
                print(f"{n}: {how} {seconds:.0f} s, {size_mb:.0f} MB", flush=True)
                runs.append(("shards", shards))
            for label, path in runs:
                form = label.split()[0]  # folder, tfrecord or shards
                measured = run_child(form, path, args.steps, env)
                result = {"examples": n, "form": label, "copies": args.copies, **measured}
                print(json.dumps(result), flush=True)
            for path in {path for _, path in runs} | {raw}:
                shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
