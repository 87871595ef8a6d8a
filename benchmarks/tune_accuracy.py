"""A tuned model vs the default recipe vs classical baselines, on one case of the accuracy
benchmark (its data: `benchmarks/accuracy.py` writes data/accuracy/ first), with the search's
cost.

    nice -n 5 .venv/bin/python benchmarks/tune_accuracy.py --seed 0 --trials 4 \
        --work runs/tune_accuracy
    nice -n 5 .venv/bin/python benchmarks/tune_accuracy.py --case debian_sections \
        --trials 10 --train-best --skip probe,default --work runs/tune_accuracy

Cases (their data, splits and backbones as in the accuracy benchmark):
- `fashion_fewshot` (5 Fashion-MNIST classes, 40 train + 20 val a class, 5,000 test images),
  EfficientNet-Lite0 with ImageNet weights at 64 px. `tltk tuned` is a random search over the
  default plan written out (its learning rate, which groups train, the head's dropout;
  objective val accuracy): every trial is a whole run.
- `debian_sections` (51 Debian sections, 6,999 / 996 / 2,004 descriptions), all-MiniLM-L6-v2 at
  32 tokens. `tltk tuned` is a random search over a head phase on the frozen encoder (its
  learning rate, the head's dropout, label smoothing, a hidden layer, class weights): every
  trial trains on the encoder's features of one shared pass per split.
Rows:
- the case's classical baselines on the same split (`LR pixels` / `TF-IDF + LR`) and the linear
  probe on the backbone's pooled features;
- `tltk default`: the benchmark's template (data + backbone only): a linear-probe head start,
  then every group fine-tuned (tltk.plan's default plan);
- `tltk tuned`: the trial the search picked (best objective), tested as that trial's run
  measured it, or with `--train-best` its best recipe trained again (`tltk tune --train-best`).
CPU seconds are this process's user + sys time for the row.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass(frozen=True)
class Case:
    backbone: dict
    label: str
    """The backbone's name in the rows."""
    modality: str
    phases: list
    """The plan `tltk tuned` searches around."""
    space: dict
    objective: str = "val_accuracy"
    callbacks: dict | None = None


FASHION_PLAN = [
    {"name": "finetune", "train": "all", "epochs": 30, "optimizer": "adam",
     "learning_rate": 1.0e-3, "schedule": "cosine", "warmup_epochs": 1.0, "layerwise_decay": 0.7},
]  # fmt: skip
"""tltk.plan.default_plan for fashion_fewshot's 200 examples, after a probe head start."""

CASES = {
    "fashion_fewshot": Case(
        backbone={"name": "efficientnet_lite0", "weights": "imagenet", "image_size": 64},
        label="Lite0/ImageNet",
        modality="image",
        phases=FASHION_PLAN,
        space={
            "phases.0.learning_rate": {"log": [1.0e-5, 1.0e-3]},
            "phases.0.train": ["all", "top:2"],
            "head.dropout": [0.0, 0.2, 0.5],
        },
    ),
    "debian_sections": Case(
        backbone={"name": "models/all-MiniLM-L6-v2", "sequence_length": 32},
        label="MiniLM",
        modality="text",
        phases=[  # the head alone on the frozen encoder: every epoch on cached features
            {"name": "head", "train": "head", "epochs": 10, "learning_rate": 1.0e-3},
        ],
        space={
            "phases.0.learning_rate": {"log": [1.0e-4, 1.0e-2]},
            "head.dropout": [0.0, 0.2, 0.5],
            "head.label_smoothing": [0.0, 0.1],
            "head.hidden_units": [0, 256],
            "head.class_weight": [None, "balanced"],
        },
        # A trial is a short head phase: saving the whole 90 MB model every epoch (checkpoint,
        # backup) would cost more than the epoch.
        callbacks={"checkpoint": False, "backup": False},
    ),
}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def default_recipe(case_name: str, work: Path, seed: int) -> dict:
    case = CASES[case_name]
    data = {"source": "folder", "path": f"data/accuracy/{case_name}/seed{seed}"}
    if case.modality == "text":
        data = {"source": "text", "path": f"data/accuracy/{case_name}/seed{seed}/texts.csv"}
    return {
        "name": f"{case_name}-{case.label.split('/')[0].lower()}-s{seed}",
        "seed": seed,
        "modality": case.modality,
        "data": data,
        "backbone": dict(case.backbone),
        "train": {"runs_dir": str(work / "runs"), "verbose": 2},
        "export": {"enabled": False},
    }


def tuned_recipe(case_name: str, work: Path, seed: int, trials: int) -> dict:
    """The case's plan written out, with a `tune:` section over it."""
    case = CASES[case_name]
    recipe = default_recipe(case_name, work, seed)
    recipe["name"] += "-tuned"
    recipe["phases"] = [dict(p) for p in case.phases]
    if case.callbacks:
        recipe["train"]["callbacks"] = dict(case.callbacks)
    recipe["tune"] = {"space": case.space, "max_trials": trials, "objective": case.objective,
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
    parser.add_argument("--case", choices=sorted(CASES), default="fashion_fewshot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument(
        "--train-best", action="store_true", help="test the best recipe trained again"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/tune_accuracy"))
    parser.add_argument("--skip", default="", help="rows to skip: baseline,probe,default,tuned")
    args = parser.parse_args()
    import accuracy_methods as am

    from tltk import tasks
    from tltk.recipe import load_recipe

    case = CASES[args.case]
    skip = set(filter(None, args.skip.split(",")))
    base = default_recipe(args.case, args.work, args.seed)
    data = tasks.load_data(load_recipe(base))
    rows: list[dict] = []
    if "baseline" not in skip and case.modality == "image":
        timed("LR pixels", rows, lambda: am.pixels_lr(data, "classification"))
    if "baseline" not in skip and case.modality == "text":
        timed("TF-IDF + LR", rows, lambda: am.tfidf_lr(data, "classification"))
    if "probe" not in skip:
        timed(f"probe {case.label}", rows, lambda: am.linear_probe(base, data, "classification"))
    if "default" not in skip:
        timed(f"tltk default {case.label}", rows, lambda: am.tltk_run(base, data))
    if "tuned" not in skip:
        timed(f"tltk tuned {case.label}", rows, lambda: _search(args, data))
    print(json.dumps(rows, indent=1))


def _search(args, data) -> dict:
    import accuracy_methods as am

    import tltk

    case = CASES[args.case]
    recipe = tuned_recipe(args.case, args.work, args.seed, args.trials)
    result = tltk.tune(recipe, train_best=args.train_best)
    trials = []
    for row in result.rows:
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        trial = {k: row[k] for k in case.space}
        trial.update({case.objective: row[case.objective], **am.headline(metrics)})
        trials.append({**trial, "seconds": row["seconds"]})
    best = trials[0]  # rows are best first
    tested = best
    if result.trained is not None:
        am.check_same_split(result.trained.run_dir / "splits.csv", data)
        tested = am.headline(result.trained.metrics)
    return {**{k: tested[k] for k in am.HEADLINE if k in tested}, "best": best,
            "trials": trials, "search": str(result.dir)}  # fmt: skip


if __name__ == "__main__":
    main()
