"""Small-image backbones against MobileNetV3-Small: training throughput, then (optionally) a
full Fashion-MNIST run from scratch with a tltk recipe.

    # throughput only (a minute or two): train-step img/s, all layers trainable, batch 64
    python benchmarks/bench_small_images.py --steps 30
    # the full benchmark: each backbone trained with recipes/fashion_mnist_pretrain.yaml on the
    # folders `tltk data fashion_mnist data/fashion_mnist_full` writes (all 60k/10k images)
    python benchmarks/bench_small_images.py --train --data data/fashion_mnist_full --epochs 15

Throughput: random pixels through backbone + 10-way head, one compiled `train_on_batch` per
step; the first 5 steps (tracing) are dropped, the median of the rest is reported, with images
per CPU-second (process time of all threads), which a shared machine's waiting does not lower.
CPU minutes of a training run are its process's user+system time, for the same reason; wall
minutes are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CANDIDATES = [
    ("resnet8", 28),
    ("resnet20", 28),
    ("resnet20", 32),
    ("mobilenet_v3_small", 32),
    ("mobilenet_v3_small", 96),
]


def throughput(name: str, size: int, steps: int, batch: int) -> tuple[float, float]:
    """(median wall img/s, img per CPU-second) of compiled train steps on random pixels."""
    import keras
    import numpy as np

    from tltk.backbones import build_backbone
    from tltk.model import build_model
    from tltk.recipe import BackboneConfig, HeadConfig

    bb = build_backbone(BackboneConfig(name=name, weights=None, image_size=size, bn_momentum=0.9))
    model = build_model(bb, HeadConfig(dropout=0.1), 10).model
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, batch)
    times = []
    for step in range(steps + 5):
        if step == 5:  # tracing done: count CPU time (all threads) from here
            cpu_start = time.process_time()
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    return batch / float(np.median(times[5:])), steps * batch / cpu


def train(name: str, size: int, data: str, epochs: int) -> dict:
    """One tltk run in a child process; returns its test metrics, CPU and wall minutes."""
    sets = [
        f"backbone.name={name}",
        f"backbone.image_size={size}",
        f"data.path={data}",
        f"phases.0.epochs={epochs}",
        f"name=bench_small_{name}_{size}",
    ]
    cmd = [sys.executable, "-m", "tltk.cli", "train", "recipes/fashion_mnist_pretrain.yaml"]
    cmd += [arg for s in sets for arg in ("--set", s)] + ["--new"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    metrics_path = f"runs/bench_small_{name}_{size}/latest/metrics.json"
    with open(metrics_path) as f:
        metrics = json.load(f)
    return {"metrics": metrics, "cpu_min": cpu / 60, "wall_min": (time.time() - start) / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--only", nargs="*", help="name:size pairs, e.g. resnet20:28")
    p.add_argument("--train", action="store_true", help="also train each on Fashion-MNIST")
    p.add_argument("--data", default="data/fashion_mnist_full")
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    pairs = CANDIDATES
    if args.only:
        pairs = [(s.split(":")[0], int(s.split(":")[1])) for s in args.only]
    for name, size in pairs:
        row = {"backbone": name, "image_size": size}
        wall, per_cpu_s = throughput(name, size, args.steps, args.batch)
        row["train_img_s"] = round(wall, 1)
        row["img_per_cpu_s"] = round(per_cpu_s, 1)
        if args.train:
            row.update(train(name, size, args.data, args.epochs))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
