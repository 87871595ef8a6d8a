"""A tuned model vs the default recipe vs classical baselines, on one case of the accuracy
benchmark (its data: `benchmarks/accuracy.py` writes data/accuracy/ first), with the search's
cost.

    nice -n 5 .venv/bin/python benchmarks/tune_accuracy.py --seed 0 --trials 4 \
        --work runs/tune_accuracy

Case fashion_fewshot (5 Fashion-MNIST classes, 40 train + 20 val a class, 5,000 test images),
EfficientNet-Lite0 with ImageNet weights at 64 px, as in the accuracy benchmark. Rows:
- `LR pixels` and `probe Lite0/ImageNet`: the accuracy benchmark's baselines on the same split;
- `tltk default`: the benchmark's template (data + backbone only): a linear-probe head start,
  then every group fine-tuned (Adam 1e-3, cosine over up to 30 epochs, early stopping);
- `tltk tuned`: a random search over that plan written out (its learning rate, which groups
  train, the head's dropout; objective val accuracy), trials' test accuracy as each run
  measured it; the best trial's run is the tuned model (its recipe, trained again with the
  same seed, is that run).
CPU seconds are this process's user + sys time for the row.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPACE = {
    "phases.0.learning_rate": {"log": [1.0e-5, 1.0e-3]},
    "phases.0.train": ["all", "top:2"],
    "head.dropout": [0.0, 0.2, 0.5],
}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def default_recipe(work: Path, seed: int) -> dict:
    return {
        "name": f"fashion_fewshot-lite0-s{seed}",
        "seed": seed,
        "data": {"source": "folder", "path": f"data/accuracy/fashion_fewshot/seed{seed}"},
        "backbone": {"name": "efficientnet_lite0", "weights": "imagenet", "image_size": 64},
        "train": {"runs_dir": str(work / "runs"), "verbose": 2},
        "export": {"enabled": False},
    }


def tuned_recipe(work: Path, seed: int, trials: int) -> dict:
    """The default plan's phase written out (tltk.plan.default_plan for 200 examples, a probe
    head start), with a `tune:` section over it."""
    recipe = default_recipe(work, seed)
    recipe["name"] += "-tuned"
    recipe["phases"] = [
        {"name": "finetune", "train": "all", "epochs": 30, "optimizer": "adam",
         "learning_rate": 1.0e-3, "schedule": "cosine", "warmup_epochs": 1.0,
         "layerwise_decay": 0.7},
    ]  # fmt: skip
    recipe["tune"] = {"space": SPACE, "max_trials": trials, "objective": "val_accuracy",
                      "seed": seed}  # fmt: skip
    return recipe


def timed(label: str, rows: list, fn) -> dict:
    cpu0, wall0 = cpu_s(), time.perf_counter()
    result = fn()
    row = {"method": label, **result, "cpu_s": round(cpu_s() - cpu0, 1),
           "wall_s": round(time.perf_counter() - wall0, 1)}  # fmt: skip
    rows.append(row)
    print("ROW", json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("runs/tune_accuracy"))
    parser.add_argument("--skip", default="", help="rows to skip: pixels,probe,default,tuned")
    args = parser.parse_args()
    import accuracy_methods as am

    import tltk
    from tltk import tasks
    from tltk.recipe import load_recipe

    skip = set(filter(None, args.skip.split(",")))
    base = default_recipe(args.work, args.seed)
    data = tasks.load_data(load_recipe(base))
    rows: list[dict] = []
    if "pixels" not in skip:
        timed("LR pixels", rows, lambda: am.pixels_lr(data, "classification"))
    if "probe" not in skip:
        timed("probe Lite0/ImageNet", rows, lambda: am.linear_probe(base, data, "classification"))
    if "default" not in skip:
        timed("tltk default Lite0/ImageNet", rows, lambda: am.tltk_run(base, data))
    if "tuned" not in skip:
        timed("tltk tuned Lite0/ImageNet", rows, lambda: _search(tltk, args))
    print(json.dumps(rows, indent=1))


def _search(tltk, args) -> dict:
    result = tltk.tune(tuned_recipe(args.work, args.seed, args.trials))
    trials = []
    for row in result.rows:
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        trial = {k: row[k] for k in SPACE}
        trial.update(val_accuracy=row["val_accuracy"], test_accuracy=metrics["accuracy"])
        trials.append({**trial, "seconds": row["seconds"]})
    best = trials[0]  # rows are best first
    return {"accuracy": best["test_accuracy"], "best": best, "trials": trials,
            "search": str(result.dir)}  # fmt: skip


if __name__ == "__main__":
    main()
