"""Fine-tune step time: `tltk.train` against a hand-written plain Keras script, in one process.

Both sides train the same model (MobileNetV3Small, weights=None, built-in rescaling, then
GlobalAveragePooling2D -> Dropout(0.2) -> Dense(K, softmax)) on the same images (the digits
class folders), with the same batch size and the same two phases:

1. head only (backbone frozen), Adam at 1e-3;
2. the backbone's top two groups (block4 + top, i.e. from `expanded_conv_8_expand` on) unfrozen
   with BatchNorm kept frozen, Adam at 1e-4 (constant), after a recompile.

The plain side is written as a practitioner would (the Keras transfer-learning guide and the
tf.data tutorial): `image_dataset_from_directory` -> `cache().shuffle().prefetch()`,
`base.trainable = False`, compile, fit, unfreeze, recompile, fit.

Each round runs one whole tltk run and one whole plain run in this one process, so machine
drift hits both alike; the side that goes first alternates between rounds. By default
(`--interleave epoch`) the two runs go in lockstep: each runs in its own thread and they take
turns at every epoch start (tltk epoch 1, plain epoch 1, tltk epoch 2, ...; never both at
once), so paired epochs are about a second apart. With `--interleave run` a whole run follows
the other (tltk, plain, plain, tltk, ...): paired epochs are ~30 s apart, which on a shared
machine costs much precision. `--aa` puts the plain script on both sides: the ratios it prints
show the noise floor.

Only training steps are timed: a callback stamps `on_train_batch_begin`, a step is the interval
to the next batch of the same epoch (model call, optimizer, metrics, the batch-end callbacks,
waiting for data), and each phase's first `--skip-epochs` epochs (tracing, cache fill) are
dropped. The callback overrides no batch-end hook, so Keras' async batch-end dispatch is decided
by each side's own callbacks, as without the benchmark. Both sides train on 1,168-1,169 images
(37 steps an epoch) and contribute the same number of steps per epoch pair. Reported: median
step time (and img/s) per side and phase, tltk/plain of those medians, the median of the
per-epoch-pair ratios, and the ratio of median process CPU time per step.

tltk runs its full `train()` (data checks, splits, evaluation) with what the plain script does
not do switched off through recipe keys: TensorBoard, checkpoints, BackupAndRestore, export,
plots; EarlyStopping too, so both sides run every epoch. Kept (tltk defaults): TerminateOnNaN
(per batch), ReduceLROnPlateau, CSVLogger and the run's state.json (per epoch), and a top-5
accuracy metric next to accuracy. `--set KEY=VALUE` adds tltk recipe overrides.

    .venv/bin/python benchmarks/bench_finetune.py             # 4 rounds, 32 px: 3-4 min, 2 cores
    .venv/bin/python benchmarks/bench_finetune.py --rounds 2 --epochs 4 --image-size 64
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tltk  # noqa: E402
from tltk import fitting  # noqa: E402

PHASES = ("head", "finetune")
FINE_TUNE_FROM = "expanded_conv_8_expand"
"""First layer of tltk's `top:2` groups (block4, top) in MobileNetV3Small."""


class StepTimer(keras.callbacks.Callback):
    """Stamps the start of every training batch with wall-clock and process CPU time.

    `steps(skip)` gives the in-epoch intervals after the first `skip` epochs. Only
    `on_train_batch_begin` is overridden: overriding a batch-end hook would turn off Keras'
    async batch-end dispatch and change what is measured. `gate` (lockstep mode) is called at
    each epoch start and returns when it is this side's turn.
    """

    def __init__(self, gate: Callable[[], None] | None = None):
        super().__init__()
        self.gate = gate
        self.epochs: list[list[tuple[float, float]]] = []

    def on_epoch_begin(self, epoch, logs=None):
        if self.gate is not None:
            self.gate()  # --interleave epoch: wait for this side's turn
        self.epochs.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self.epochs[-1].append((time.perf_counter(), time.process_time()))

    def steps(self, skip_epochs: int) -> dict[str, list[list[float]]]:
        """Per timed epoch, the step durations in seconds: {"wall": [[...], ...], "cpu": ...}."""
        epochs = self.epochs[skip_epochs:]
        return {
            "wall": [[b[0] - a[0] for a, b in pairwise(st)] for st in epochs],
            "cpu": [[b[1] - a[1] for a, b in pairwise(st)] for st in epochs],
        }


class Turns:
    """Strict turn-taking between threads: one side runs at a time, the turn passes at each
    epoch start (`yield_turn`) and for good when a side ends (`finish`)."""

    def __init__(self, names: list[str]):
        self.cond = threading.Condition()
        self.order, self.active, self.current = list(names), set(names), names[0]

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.current == name)

    def yield_turn(self, name: str) -> None:
        with self.cond:
            self._pass(name)
        self.wait(name)

    def finish(self, name: str) -> None:
        with self.cond:
            self.active.discard(name)
            self._pass(name)

    def _pass(self, name: str) -> None:
        if self.current != name:
            return
        i = self.order.index(name)
        for other in self.order[i + 1 :] + self.order[: i + 1]:
            if other in self.active:
                self.current = other
                break
        self.cond.notify_all()


# --------------------------------------------------------------------------- tltk


def tltk_recipe(args: argparse.Namespace) -> dict:
    return {
        "name": "bench_finetune",
        "seed": args.seed,
        "data": {
            "source": "folder",
            "path": str(args.data),
            "val_fraction": 0.15,
            "test_fraction": 0.2,
        },
        "backbone": {"name": "mobilenet_v3_small", "weights": "none", "image_size": args.size},
        "head": {"dropout": 0.2},
        "phases": [
            {"name": "head", "train": "head", "epochs": args.epochs, "learning_rate": 1e-3},
            {"name": "finetune", "train": "top:2", "epochs": args.epochs, "learning_rate": 1e-4},
        ],
        "train": {
            "batch_size": args.batch_size,
            "verbose": 0,
            "callbacks": {
                "early_stopping": None,
                "checkpoint": False,
                "backup": False,
                "tensorboard": False,
            },
        },
        "evaluate": {"plots": False},
        "export": {"enabled": False, "save_backbone": False},
    }


def run_tltk(args: argparse.Namespace, gate: Callable[[], None] | None = None) -> dict:
    timers: list[StepTimer] = []
    original = fitting.phase_callbacks

    def with_timer(*a, **kw):
        timers.append(StepTimer(gate))
        return original(*a, **kw) + [timers[-1]]

    fitting.phase_callbacks = with_timer
    try:
        with tempfile.TemporaryDirectory(prefix="bench_tltk_") as tmp:
            tltk.train(tltk_recipe(args), overrides=args.set, run_dir=Path(tmp) / "run")
    finally:
        fitting.phase_callbacks = original
    return {name: t.steps(args.skip_epochs) for name, t in zip(PHASES, timers, strict=True)}


# --------------------------------------------------------------------------- plain Keras


def run_plain(args: argparse.Namespace, gate: Callable[[], None] | None = None) -> dict:
    """What a practitioner writes from the Keras transfer-learning guide."""
    keras.utils.set_random_seed(args.seed)
    size = (args.size, args.size)
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        args.data,
        image_size=size,
        batch_size=args.batch_size,
        label_mode="categorical",
        validation_split=0.35,  # tltk keeps 15% for val and 20% for test: same train size
        subset="both",
        seed=args.seed,
        verbose=False,
    )
    num_classes = len(train_ds.class_names)
    autotune = tf.data.AUTOTUNE
    train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=autotune)
    val_ds = val_ds.cache().prefetch(buffer_size=autotune)

    base = keras.applications.MobileNetV3Small(
        input_shape=(*size, 3), include_top=False, weights=None, include_preprocessing=True
    )
    base.trainable = False
    inputs = keras.Input((*size, 3))
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)

    timers = {name: StepTimer(gate) for name in PHASES}
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[timers["head"]], verbose=0
    )

    base.trainable = True
    fine_tune_at = [layer.name for layer in base.layers].index(FINE_TUNE_FROM)
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # keep BatchNorm in inference mode
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=2 * args.epochs,
        initial_epoch=args.epochs,
        callbacks=[timers["finetune"]],
        verbose=0,
    )
    return {name: t.steps(args.skip_epochs) for name, t in timers.items()}


# --------------------------------------------------------------------------- report


def summarize(rounds: list[dict], batch: int) -> dict:
    """Median step times per side and phase, pooled over all timed epochs of all rounds.

    Epoch i of a tltk run is paired with epoch i of the plain run of the same round (in
    lockstep they ran one after the other); each pair contributes the same number of steps per
    side, and `paired_ratio` is the median over pairs of their median-step ratios.
    """
    sides = ("tltk", "plain")
    pooled = {(side, p, k): [] for side in sides for p in PHASES for k in ("wall", "cpu")}
    pair_ratios: dict[str, list[float]] = {p: [] for p in PHASES}
    for r in rounds:
        for p in PHASES:
            pairs = zip(r["tltk"][p]["wall"], r["plain"][p]["wall"], strict=True)
            for e, (tltk_epoch, plain_epoch) in enumerate(pairs):
                n = min(len(tltk_epoch), len(plain_epoch))
                pair_ratios[p].append(_median(tltk_epoch[:n]) / _median(plain_epoch[:n]))
                for side, k in ((side, k) for side in sides for k in ("wall", "cpu")):
                    pooled[side, p, k] += r[side][p][k][e][:n]
    phases = {}
    for p in PHASES:
        row: dict = {"steps": len(pooled["tltk", p, "wall"])}
        for side in sides:
            wall, cpu = _median(pooled[side, p, "wall"]), _median(pooled[side, p, "cpu"])
            row |= {f"{side}_ms": 1000 * wall, f"{side}_img_s": batch / wall}
            row[f"{side}_cpu_ms"] = 1000 * cpu
        row["paired_ratio"] = _median(pair_ratios[p])
        phases[p] = row | _ratios(row)
    # Overall: one step of each phase (both phases run the same number of steps).
    overall: dict = {"steps": sum(phases[p]["steps"] for p in PHASES)}
    for side in sides:
        ms = sum(phases[p][f"{side}_ms"] for p in PHASES) / len(PHASES)
        overall |= {f"{side}_ms": ms, f"{side}_img_s": 1000 * batch / ms}
        overall[f"{side}_cpu_ms"] = sum(phases[p][f"{side}_cpu_ms"] for p in PHASES) / len(PHASES)
    overall["paired_ratio"] = _median([x for p in PHASES for x in pair_ratios[p]])
    return {"phases": phases, "overall": overall | _ratios(overall), "pair_ratios": pair_ratios}


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _ratios(row: dict) -> dict:
    return {
        "ratio": row["tltk_ms"] / row["plain_ms"],
        "cpu_ratio": row["tltk_cpu_ms"] / row["plain_cpu_ms"],
    }


def print_report(summary: dict, args: argparse.Namespace, walls: dict) -> None:
    print(
        f"\nMobileNetV3Small weights=None, {args.size} px, batch {args.batch_size}, "
        f"{args.epochs} epochs/phase (first {args.skip_epochs} untimed), {args.rounds} rounds "
        f"interleaved by {args.interleave}, {os.cpu_count()} CPU cores.\n"
        + ("A/A CHECK: the 'tltk' columns are a second plain run.\n" if args.aa else "")
        + "img/s and ms: median step time (wall clock) over all timed steps; ratio: tltk/plain of "
        "those medians; paired: median of per-epoch-pair ratios; cpu: ratio of median process "
        "CPU time per step."
    )
    head = ("phase", "steps", "tltk img/s", "plain img/s", "tltk ms", "plain ms", "ratio")
    head += ("paired", "cpu")
    print("{:<9}{:>6}{:>12}{:>13}{:>9}{:>10}{:>8}{:>8}{:>7}".format(*head))
    rows = [(p, summary["phases"][p]) for p in PHASES] + [("overall", summary["overall"])]
    for name, r in rows:
        print(
            f"{name:<9}{r['steps']:>6}{r['tltk_img_s']:>12.0f}{r['plain_img_s']:>13.0f}"
            f"{r['tltk_ms']:>9.2f}{r['plain_ms']:>10.2f}{r['ratio']:>8.3f}"
            f"{r['paired_ratio']:>8.3f}{r['cpu_ratio']:>7.3f}"
        )
    for p in PHASES:
        ratios = summary["pair_ratios"][p]
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        print(f"{p}: epoch-pair ratio quartiles {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
    if args.interleave == "run":
        print(f"wall s per run: tltk {_fmt(walls['tltk'])}; plain {_fmt(walls['plain'])}")
    else:
        rounds = [max(t, p) for t, p in zip(walls["tltk"], walls["plain"], strict=True)]
        print(f"wall s per round (both runs in lockstep): {_fmt(rounds)}")


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.0f}" for v in values)


def _flat(epochs: list[list[float]]) -> list[float]:
    return [x for epoch in epochs for x in epoch]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="tltk/plain pairs (default 4; even: each leads as often)",
    )
    p.add_argument("--epochs", type=int, default=6, help="epochs per phase (default 6)")
    p.add_argument("--skip-epochs", type=int, default=1, help="untimed epochs per phase")
    p.add_argument("--image-size", dest="size", type=int, default=32, help="default 32")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "digits")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra tltk recipe override, e.g. train.callbacks.terminate_on_nan=false",
    )
    p.add_argument(
        "--interleave",
        choices=("epoch", "run"),
        default="epoch",
        help="epoch: in each round the two runs take turns epoch by epoch (default); "
        "run: whole runs one after the other",
    )
    p.add_argument(
        "--aa",
        action="store_true",
        help="A/A check: run the plain script in tltk's place too, to see the noise floor",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.epochs <= args.skip_epochs:
        p.error("--epochs must be larger than --skip-epochs")
    if not args.data.is_dir():
        p.error(f"{args.data}: not found; run `tltk data digits {args.data}` first")
    return args


def run_round(args: argparse.Namespace, index: int) -> tuple[dict, dict]:
    """One tltk run and one plain run: one after the other, or epoch by epoch in lockstep.

    tltk goes first in even rounds and plain in odd ones, so neither side always leads.
    """
    sides = {"tltk": run_plain if args.aa else run_tltk, "plain": run_plain}
    if index % 2:
        sides = dict(reversed(sides.items()))
    results: dict = {}
    walls: dict = {}
    keras.backend.clear_session()
    gc.collect()
    if args.interleave == "run":
        for side, fn in sides.items():
            start = time.perf_counter()
            results[side] = fn(args)
            walls[side] = time.perf_counter() - start
        return results, walls
    turns = Turns(list(sides))
    errors: list[BaseException] = []

    def work(side: str) -> None:
        turns.wait(side)
        start = time.perf_counter()
        try:
            results[side] = sides[side](args, gate=lambda: turns.yield_turn(side))
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)
        finally:
            walls[side] = time.perf_counter() - start  # includes the other side's turns
            turns.finish(side)

    threads = [threading.Thread(target=work, args=(side,), daemon=True) for side in sides]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results, walls


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rounds, walls = [], {"tltk": [], "plain": []}
    for i in range(args.rounds):
        result, wall = run_round(args, i)
        for side in walls:
            walls[side].append(wall[side])
            meds = ", ".join(
                f"{p} {1000 * _median(_flat(result[side][p]['wall'])):.1f} ms" for p in PHASES
            )
            print(f"round {i + 1}/{args.rounds} {side}: {meds} ({wall[side]:.0f} s)", flush=True)
        rounds.append(result)
    summary = summarize(rounds, args.batch_size)
    print_report(summary, args, walls)
    if args.json:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        record = {"config": config, **summary, "walls": walls, "raw_steps_s": rounds}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
