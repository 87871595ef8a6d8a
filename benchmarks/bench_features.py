"""Head-phase epoch time on cached backbone features vs running the frozen backbone, in one run.

For an image backbone (ImageNet EfficientNet-Lite0 at 64 px, the digits) and a text backbone
(all-MiniLM-L6-v2 at sequence length 64, the Debian package descriptions), `tltk.train` runs
the same recipe twice: one head phase of `--epochs` epochs with `train.feature_cache: off`
(every epoch runs the backbone, and for texts the tokenizer, over every training and
validation example) and with `auto` (the features are computed once per split, then each
epoch trains the head alone on them). Both start from a random head (`head.init: random`),
so only the phase differs; the two runs of a backbone alternate (`--rounds`), the side that
goes first swapping each round.

Timed per epoch (a callback after every other one, so validation is inside): wall seconds and
this process's CPU seconds (user + sys, every thread). The first epoch of each run (tracing,
the decoded-image cache filling) is dropped; reported: the median epoch, the ratio uncached /
cached, the one-time features pass (train + val) of the cached run, and after how many epochs
it has paid for itself.

    .venv/bin/python benchmarks/bench_features.py                  # both backbones, 3 epochs
    .venv/bin/python benchmarks/bench_features.py --cases image --epochs 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tltk  # noqa: E402
from tltk import features, fitting  # noqa: E402

CASES = {
    "image": {
        "label": "EfficientNet-Lite0 (ImageNet), 64 px, digits",
        "data": {"source": "folder", "path": "data/digits", "val_fraction": 0.15,
                 "test_fraction": 0.2},
        "backbone": {"name": "efficientnet_lite0", "weights": "imagenet", "image_size": 64},
    },
    "text": {
        "label": "all-MiniLM-L6-v2, sequence 64, Debian sections",
        "modality": "text",
        "data": {"source": "text", "path": "data/debian_sections/texts.csv",
                 "val_fraction": 0.1, "test_fraction": 0.2},
        "backbone": {"name": "models/all-MiniLM-L6-v2", "sequence_length": 64,
                     "kwargs": {"pooling": "mean"}},
    },
}  # fmt: skip


class EpochTimer(keras.callbacks.Callback):
    """Wall and process CPU seconds of each epoch, validation included (it comes last)."""

    def __init__(self):
        super().__init__()
        self.epochs: list[tuple[float, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        wall, cpu = self._start
        self.epochs.append((time.perf_counter() - wall, time.process_time() - cpu))


def recipe(case: str, cache: str, epochs: int, work: Path) -> dict:
    spec = {k: v for k, v in CASES[case].items() if k != "label"}
    return {
        "name": f"bench_features_{case}_{cache}",
        **spec,
        "head": {"init": "random", "dropout": 0.1},
        "phases": [{"name": "head", "train": "head", "epochs": epochs, "learning_rate": 1e-3}],
        "train": {
            "batch_size": 32,
            "feature_cache": cache,
            "runs_dir": str(work / "runs"),
            "verbose": 0,
            "callbacks": {"tensorboard": False, "early_stopping": None, "checkpoint": False},
        },
        "evaluate": {"plots": False},
        "export": {"enabled": False},
    }


def timed_run(case: str, cache: str, epochs: int, work: Path) -> dict:
    """One `tltk.train`; its epochs' (wall, cpu) and the features pass's (wall, cpu)."""
    timer, passes = EpochTimer(), []
    make_callbacks, compute = fitting.phase_callbacks, features.FeatureCache._compute

    def with_timer(*args, **kwargs):
        return [*make_callbacks(*args, **kwargs), timer]

    def timed_compute(self, split):
        wall, cpu = time.perf_counter(), time.process_time()
        out = compute(self, split)
        passes.append((time.perf_counter() - wall, time.process_time() - cpu))
        return out

    fitting.phase_callbacks, features.FeatureCache._compute = with_timer, timed_compute
    try:
        keras.backend.clear_session()
        result = tltk.train(recipe(case, cache, epochs, work), resume=False)
    finally:
        fitting.phase_callbacks, features.FeatureCache._compute = make_callbacks, compute
    return {
        "epochs": timer.epochs,
        "features": [sum(p[0] for p in passes), sum(p[1] for p in passes)] if passes else None,
        "train_examples": len(result.data.splits["train"]),
        "val_examples": len(result.data.splits.get("val", ())),
        "val_loss": result.history["val_loss"][-1],
    }


def summarize(case: str, runs: dict[str, list[dict]]) -> dict:
    def median(cache: str, i: int) -> float:
        return statistics.median(e[i] for run in runs[cache] for e in run["epochs"][1:])

    off = {"wall": median("off", 0), "cpu": median("off", 1)}
    on = {"wall": median("auto", 0), "cpu": median("auto", 1)}
    passes = [run["features"] for run in runs["auto"]]
    features_pass = {"wall": statistics.median(p[0] for p in passes),
                     "cpu": statistics.median(p[1] for p in passes)}  # fmt: skip
    first = runs["auto"][0]
    return {
        "case": case,
        "label": CASES[case]["label"],
        "train": first["train_examples"],
        "val": first["val_examples"],
        "uncached_epoch": off,
        "cached_epoch": on,
        "ratio_wall": off["wall"] / on["wall"],
        "ratio_cpu": off["cpu"] / on["cpu"],
        "features_pass": features_pass,
        "break_even_epochs": features_pass["wall"] / max(off["wall"] - on["wall"], 1e-9),
        "val_loss": {k: [r["val_loss"] for r in v] for k, v in runs.items()},
    }


def format_table(rows: list[dict]) -> str:
    lines = [
        "| backbone | train / val | uncached epoch s (CPU s) | cached epoch s (CPU s) | "
        "ratio wall (CPU) | features pass s (CPU s) | pays off after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        off, on, fp = r["uncached_epoch"], r["cached_epoch"], r["features_pass"]
        lines.append(
            f"| {r['label']} | {r['train']:,} / {r['val']:,} | {off['wall']:.2f} ({off['cpu']:.2f})"
            f" | {on['wall']:.3f} ({on['cpu']:.3f}) | {r['ratio_wall']:.0f}x "
            f"({r['ratio_cpu']:.0f}x) | {fp['wall']:.1f} ({fp['cpu']:.1f}) | "
            f"{r['break_even_epochs']:.1f} epochs |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="image,text", help="comma-separated: image, text")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the head phase (>= 2)")
    p.add_argument("--rounds", type=int, default=1, help="uncached/cached pairs per case")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            runs: dict[str, list[dict]] = {"off": [], "auto": []}
            for r in range(args.rounds):
                for cache in ("off", "auto") if r % 2 == 0 else ("auto", "off"):
                    print(f"== {case}, round {r + 1}, feature_cache {cache}", flush=True)
                    runs[cache].append(timed_run(case, cache, args.epochs, Path(tmp)))
            rows.append(summarize(case, runs))
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
