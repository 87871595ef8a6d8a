"""Small-image backbones against MobileNetV3-Small on all of Fashion-MNIST, from scratch.

    tltk data fashion_mnist data/fashion_mnist_full      # 60k train / 10k test, once
    # step throughput only (a few minutes): img/s of compiled train steps, all layers trainable
    python benchmarks/bench_small_images.py
    # where a run's CPU goes: data checks, the input pipeline, the model steps
    python benchmarks/bench_small_images.py --costs --only resnet8:28
    # an architecture before it becomes a preset: 1 block a stage, widths 48/96/192, stem 24
    python benchmarks/bench_small_images.py --arch r8w48=1:48,96,192:2,2,2:24 --only r8w48:28
    # the main job's pretraining: each backbone pretrained, then transferred to digits per seed
    python benchmarks/bench_small_images.py --main-job mobilenet_v3_small resnet8 --seeds 1 2 3
    # the full table (hours on 2 cores): each candidate trained by recipes/fashion_mnist_full.yaml
    python benchmarks/bench_small_images.py --train
    # XLA steps, and one TensorFlow thread (the environment sets it for the whole process)
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
        python benchmarks/bench_small_images.py --steps 80 --jit --only resnet8_wide:28

Each candidate is `backbone:px[:epochs]`; `--train` runs `tltk train` of
recipes/fashion_mnist_full.yaml in a child process with only the backbone, its input size and
the epoch count changed (the same augmentation, SGD + Nesterov, cosine schedule with warm-up,
weight decay and label smoothing); the recipe's XLA is kept for the small_resnet family only
(MobileNetV3-Small trains 7x slower with it on a CPU) and its one thread for every candidate.
Epochs 0 means throughput only. The default epochs give each candidate at most about 30
CPU-minutes on 2 cores, the issue's budget; `--epochs N` sets one count for all.

Throughput: random pixels through backbone + 10-way head, one compiled `train_on_batch` per
step; the first 5 steps (tracing) are dropped, the median of the rest is reported, with images
per CPU-second (process time of all threads), which waiting for a shared machine does not lower.
CPU minutes of a training run are its process's user+system time, for the same reason; wall
minutes are printed beside them. The run's own img/s counts every training image of every
epoch over the whole process (data checks, validation and the test evaluation included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

RECIPE = "recipes/fashion_mnist_full.yaml"
CANDIDATES = [  # backbone:px[:epochs]; no epochs = the recipe's (12)
    "resnet8_wide:28",
    "resnet8:28:12",
    "resnet20:28:4",
    "wide_resnet_16_4:28:0",  # one epoch alone is over 30 CPU-minutes here: throughput only
    "mobilenet_v3_small:32:12",
    "mobilenet_v3_small:96:3",
]


def parse_candidate(text: str) -> tuple[str, int, int | None]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"candidate {text!r}: write backbone:px or backbone:px:epochs")
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else None


def parse_arch(text: str):
    """`NAME=BLOCKS:W1,W2,W3:S1,S2,S3[:STEM]`, e.g. `r8w48=1:48,96,192:2,2,2:24`: a
    small_resnet architecture that is not (yet) a preset."""
    from tltk.backbones.small_resnet import SmallResNetArch

    try:
        name, spec = text.split("=", 1)
        blocks, widths, strides, *stem = spec.split(":")
        arch = SmallResNetArch(
            int(blocks),
            tuple(int(w) for w in widths.split(",")),
            *(int(w) for w in stem[:1]),
            strides=tuple(int(s) for s in strides.split(",")),
        )
    except ValueError as err:
        form = "NAME=BLOCKS:W1,W2,W3:S1,S2,S3[:STEM]"
        raise SystemExit(f"--arch {text!r}: write {form} ({err})") from None
    return name, arch


def _backbone(name: str, size: int, archs: dict):
    from tltk.backbones import build_backbone
    from tltk.backbones.small_resnet import build_arch
    from tltk.recipe import BackboneConfig

    if name in archs:
        return build_arch(archs[name], name, size)
    return build_backbone(BackboneConfig(name=name, weights=None, image_size=size, bn_momentum=0.9))


def throughput(
    name: str, size: int, steps: int, batch: int, archs: dict | None = None, jit: bool = False
) -> tuple[float, float]:
    """(median wall img/s, img per CPU-second) of compiled train steps on random pixels,
    with the recipe's optimizer (SGD, Nesterov momentum 0.9, weight decay 5e-4); `jit`: XLA."""
    import keras
    import numpy as np

    from tltk.model import build_model
    from tltk.recipe import HeadConfig

    model = build_model(_backbone(name, size, archs or {}), HeadConfig(dropout=0.0), 10).model
    sgd = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.compile(sgd, "categorical_crossentropy", jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, batch), 10)
    times = []
    for step in range(steps + 5):
        if step == 5:  # tracing done: count CPU time (all threads) from here
            cpu_start = time.process_time()
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    return batch / float(np.median(times[5:])), steps * batch / cpu


def _cpu_wall(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def costs(name: str, size: int, data: str, steps: int) -> dict:
    """CPU seconds of one run's parts, measured apart in this process: the data checks
    (read, decode check, hash, split), one training epoch of the input pipeline alone (first
    epoch: decode and fill the cache; second: cached, augment and batch), and one epoch of
    model steps (from `steps` real batches)."""
    from tltk import phases as ph
    from tltk import tasks
    from tltk.trainer import as_recipe

    sets = [f"backbone.name={name}", f"backbone.image_size={size}", f"data.path={data}"]
    recipe = as_recipe(RECIPE, sets)
    labelled, data_cpu, data_wall = _cpu_wall(lambda: tasks.load_data(recipe))
    task_model = tasks.build_task_model(recipe, labelled)
    batch = recipe.train.batch_size
    n = len(labelled.splits["train"].labels) // batch
    batches = iter(tasks.pipeline(recipe, labelled, "train", task_model, batch, training=True))
    (x, y), first_cpu, _ = _cpu_wall(lambda: [next(batches) for _ in range(n)][-1])
    _, cached_cpu, _ = _cpu_wall(lambda: [next(batches) for _ in range(n)])
    phase = recipe.phases[0]
    train = ph.trainable_groups(phase.train, task_model.backbone_groups)
    ph.set_trainable(task_model.groups, train, phase.batchnorm)
    model = task_model.model
    model.compile(ph.make_optimizer(phase, steps_per_epoch=n), tasks.loss(recipe))
    for _ in range(3):  # tracing
        model.train_on_batch(x, y)
    _, step_cpu, _ = _cpu_wall(lambda: [model.train_on_batch(x, y) for _ in range(steps)])
    return {
        "data_checks_cpu_s": round(data_cpu, 1),
        "data_checks_wall_s": round(data_wall, 1),
        "pipeline_first_epoch_cpu_s": round(first_cpu, 1),
        "pipeline_epoch_cpu_s": round(cached_cpu, 1),
        "model_epoch_cpu_s": round(step_cpu / steps * n, 1),
    }


def tltk_run(recipe: str, sets: list[str], *, quiet: bool = False) -> tuple[Path, float, float]:
    """`tltk train RECIPE --new --set ...` in a child: (its run folder, CPU s, wall s). The
    CPU is the child's user + system time; `sets` must name the run (`name=...`)."""
    cmd = [sys.executable, "-m", "tltk.cli", "train", recipe, "--new"]
    cmd += [arg for s in sets for arg in ("--set", s)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if quiet else None)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    name = next(s.split("=", 1)[1] for s in sets if s.startswith("name="))
    return Path("runs") / name / "latest", cpu, wall


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _small_resnet(name: str) -> bool:
    from tltk.backbones.base import lookup

    spec = lookup(name)
    return spec is not None and spec.family == "small_resnet"


def train(name: str, size: int, data: str, epochs: int | None) -> dict:
    """One `tltk train` of RECIPE: test accuracy, CPU and wall minutes, the run's images/s."""
    sets = [f"backbone.name={name}", f"backbone.image_size={size}", f"data.path={data}"]
    sets.append(f"name=bench_small_{name}_{size}")
    if not _small_resnet(name):  # XLA pays on a CPU for the small_resnet family only
        sets.append("train.jit_compile=auto")
    if epochs is not None:
        sets.append(f"phases.0.epochs={epochs}")
    run, cpu, wall = tltk_run(RECIPE, sets)
    done_epochs = _json(run / "state.json")["phases"][0]["end_epoch"]
    seen = done_epochs * _json(run / "data_report.json")["counts"]["train"]["total"]
    return {
        "epochs": done_epochs,
        "test_accuracy": round(_json(run / "metrics.json")["accuracy"], 4),
        "cpu_min": round(cpu / 60, 1),
        "wall_min": round(wall / 60, 1),
        "run_img_s": round(seen / wall, 1),
        "run_img_per_cpu_s": round(seen / cpu, 1),
    }


# The main job's second example: backbone -> (pretraining recipe, its overrides, the transfer's
# overrides of recipes/digits_transfer.yaml). Only the backbone differs between them.
_RESNET = ["backbone.image_size=28"]
PRETRAININGS = {
    "mobilenet_v3_small": ("recipes/fashion_mnist_pretrain.yaml", [], []),
    "resnet8": (
        "recipes/fashion_mnist_pretrain_resnet.yaml",
        [],
        ["backbone.name=resnet8", *_RESNET],
    ),
    "resnet8_wide": (
        "recipes/fashion_mnist_pretrain_resnet.yaml",
        ["backbone.name=resnet8_wide"],
        ["backbone.name=resnet8_wide", *_RESNET],
    ),
}


def main_job(backbones: list[str], seeds: list[int]) -> None:
    """Pretrain each backbone as the main job does (seed 42), then transfer it to digits with
    recipes/digits_transfer.yaml once per seed (each seed is another digits split)."""
    for backbone in backbones:
        recipe, pretrain_sets, transfer_sets = PRETRAININGS[backbone]
        pre = f"bench_pretrain_{backbone}"
        run, cpu, wall = tltk_run(recipe, [*pretrain_sets, f"name={pre}"], quiet=True)
        acc = _json(run / "metrics.json")["accuracy"]
        row = {"backbone": backbone, "pretrain": [round(acc, 4), round(cpu), round(wall)]}
        for seed in seeds:
            sets = transfer_sets + [f"backbone.weights=runs/{pre}/latest", f"seed={seed}"]
            sets += [f"name=bench_transfer_{backbone}_{seed}", "export.enabled=false"]
            run, cpu, wall = tltk_run("recipes/digits_transfer.yaml", sets, quiet=True)
            acc = _json(run / "metrics.json")["accuracy"]
            row[f"digits_seed{seed}"] = [round(acc, 4), round(cpu), round(wall)]
        print(json.dumps(row), "(accuracy, CPU s, wall s)", flush=True)


def table(rows: list[dict]) -> str:
    head = "| backbone | px | epochs | test acc | CPU min | wall min | run img/s | run img/CPU-s "
    head += "| step img/s | step img/CPU-s |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cells = [r["backbone"], r["image_size"], r.get("epochs", 0), r.get("test_accuracy", "")]
        cells += [r.get(k, "") for k in ("cpu_min", "wall_min", "run_img_s", "run_img_per_cpu_s")]
        cells += [r["train_img_s"], r["img_per_cpu_s"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per throughput")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--only", nargs="*", help="candidates backbone:px[:epochs], e.g. resnet20:28:4")
    p.add_argument("--train", action="store_true", help="train each with " + RECIPE)
    p.add_argument("--costs", action="store_true", help="CPU of data checks, pipeline, steps")
    p.add_argument("--data", default="data/fashion_mnist_full")
    p.add_argument("--epochs", type=int, help="one epoch count for every candidate")
    p.add_argument("--jit", action="store_true", help="throughput of XLA-compiled steps")
    p.add_argument(
        "--main-job",
        nargs="*",
        metavar="BACKBONE",
        choices=sorted(PRETRAININGS),
        help="pretrain as the main job does, transfer to digits (each --seeds)",
    )
    p.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    p.add_argument(
        "--arch",
        nargs="*",
        default=[],
        help="throughput of unregistered small_resnet architectures NAME=BLOCKS:W1,W2,W3:"
        "S1,S2,S3[:STEM] (then name them in --only NAME:PX)",
    )
    args = p.parse_args()
    archs = dict(parse_arch(a) for a in args.arch)
    if args.main_job is not None:
        return main_job(args.main_job or list(PRETRAININGS), args.seeds)
    rows = []
    for name, size, epochs in map(parse_candidate, args.only or CANDIDATES):
        epochs = args.epochs if args.epochs is not None else epochs
        row: dict = {"backbone": name, "image_size": size}
        wall, per_cpu_s = throughput(name, size, args.steps, args.batch, archs, args.jit)
        row["train_img_s"] = round(wall, 1)
        row["img_per_cpu_s"] = round(per_cpu_s, 1)
        if args.costs:
            row.update(costs(name, size, args.data, args.steps))
        if args.train and epochs != 0:
            row.update(train(name, size, args.data, epochs))
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
