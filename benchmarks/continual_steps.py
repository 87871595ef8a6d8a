"""Why a continue step diverges: its first optimizer steps from the grown head, under variants.

For one continue run folder it loads the run's data (the new data + the replayed examples, the
joined val split) and, for each variant, the grown starting point (RUN/weights/grown.weights.h5),
then trains `--steps` steps on the run's own training stream and prints the mean training
loss of each fifth of them and the val accuracy on the old and the new classes before and
after. A variant is a phase (`train`, learning rate, warm-up) and whether the recipe's class
weights apply; the step count is the schedule's length, so a cosine schedule runs out in it.

    .venv/bin/python benchmarks/continual_steps.py runs/bench_continual/cl_fashion/RUN --steps 40
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    # name: (train, learning rate, warm-up as a fraction of the steps, class weights)
    "top3 1e-3, no warm-up, balanced (the diverged step)": ("top:3", 1e-3, 0.0, True),
    "top3 1e-3, no warm-up, no class weights": ("top:3", 1e-3, 0.0, False),
    "top3 3e-4, warm-up 0.1, balanced": ("top:3", 3e-4, 0.1, True),
    "head 1e-3, no warm-up, balanced": ("head", 1e-3, 0.0, True),
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def val_accuracy(model, recipe, data, task_model, k_old: int) -> tuple[float, float]:
    from tltk import tasks
    from tltk.data.pipeline import predict_unpadded

    ds = tasks.pipeline(recipe, data, "val", task_model, 64, training=False)
    labels = data.splits["val"].labels
    right = predict_unpadded(model, ds, len(labels)).argmax(1) == labels
    return float(right[labels < k_old].mean()), float(right[labels >= k_old].mean())


def run_variant(recipe, data, task_model, grown: Path, variant, steps: int, k_old: int) -> dict:
    import keras

    from tltk import phases as ph
    from tltk import tasks
    from tltk.class_weights import class_weight
    from tltk.recipe import PhaseConfig

    train, lr, warmup, weighted = variant
    model = task_model.model
    model.load_weights(str(grown))
    before = val_accuracy(model, recipe, data, task_model, k_old)
    phase = PhaseConfig(name="probe_steps", train=train, steps=steps, learning_rate=lr,
                        schedule="cosine", warmup_epochs=warmup)  # fmt: skip
    groups = ph.trainable_groups(train, task_model.backbone_groups)
    ph.set_trainable(task_model.groups, groups, "frozen")
    model.compile(optimizer=ph.make_optimizer(phase, steps_per_epoch=steps),
                  loss=tasks.loss(recipe), metrics=["accuracy"])  # fmt: skip
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: losses.append(logs["loss"])
    )
    ds = tasks.pipeline(recipe, data, "train", task_model, recipe.train.batch_size, training=True)
    cpu0, wall0 = _cpu(), time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[record],
              class_weight=class_weight(recipe, data) if weighted else None)  # fmt: skip
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    # Keras logs the running mean of the epoch: recover each step's own loss from it.
    running = np.asarray(losses)
    own = running * np.arange(1, len(running) + 1) - np.concatenate(
        [[0.0], running[:-1] * np.arange(1, len(running))]
    )
    fifths = [round(float(part.mean()), 3) for part in np.array_split(own, 5)]
    after = val_accuracy(model, recipe, data, task_model, k_old)
    return {"loss_by_fifth": fifths, "val_before": before, "val_after": after,
            "cpu_s": round(cpu, 1), "wall_s": round(wall, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--only", action="append", help="variant names (default: all)")
    parser.add_argument("--json")
    args = parser.parse_args()
    from tltk import tasks
    from tltk.class_weights import class_weight

    recipe, task_model, classes = tasks.load_run(args.run)
    data = tasks.load_data(recipe, run_dir=args.run)
    k_old = len(data.report["continual"]["old_classes"])
    weights = class_weight(recipe, data)
    print(f"{len(data.splits['train'])} training examples, class weights {weights}")
    out = {}
    for name, variant in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        row = run_variant(recipe, data, task_model, args.run / "weights" / "grown.weights.h5",
                          variant, args.steps, k_old)  # fmt: skip
        out[name] = row
        print(
            f"{name}: loss by fifth {row['loss_by_fifth']}; val old/new "
            f"{row['val_before'][0]:.3f}/{row['val_before'][1]:.3f} -> "
            f"{row['val_after'][0]:.3f}/{row['val_after'][1]:.3f} ({row['cpu_s']} CPU-s)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
