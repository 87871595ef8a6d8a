"""Continual learning on real data: classes that arrive in groups, one continue run per group.

For a suite (digits 0-4 then 5-9; Fashion-MNIST in three groups; Debian sections in three
groups) it writes each group's data once, pre-split (seeded: the same train/val/test files
whatever the strategy), under data/continual/SUITE/, trains the first group with the suite's
recipe, then continues through the other groups with each strategy, and trains the upper bound:
one run on every group's data at once (the same splits joined). Every run reads the same
test files, so the final accuracies compare directly.

Per strategy it prints, for each step, the old classes' accuracy before and after, forgetting,
the new classes' accuracy, overall accuracy, and the wall and CPU seconds of the step's run
(user + sys of this process); the retrain row is one run on everything.

    .venv/bin/python benchmarks/continual.py digits
    .venv/bin/python benchmarks/continual.py fashion --strategies finetune,rehearsal+distill
    .venv/bin/python benchmarks/continual.py debian --json debian.json
    # continue steps of one head phase (3 epochs on cached features), from a finished first run
    .venv/bin/python benchmarks/continual.py digits --first runs/bench_continual/cl_digits/RUN \\
        --continue-set 'phases=[{name: head, train: head, epochs: 3, learning_rate: 0.003}]'
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("finetune", "rehearsal", "distill", "rehearsal+distill")


@dataclass
class Suite:
    groups: list[list[str]]
    recipe: dict
    source: str  # "digits", "fashion", "debian"


def _run_sections(top_k: int, replay_budget: int) -> dict:
    """What every suite's recipe shares: quiet training without early stopping, plots, no
    export (the benchmark only measures), a replay buffer of `replay_budget` examples."""
    return {
        "train": {
            "batch_size": 32,
            "verbose": 0,
            "callbacks": {"tensorboard": False, "early_stopping": None},
        },
        "evaluate": {"top_k": top_k, "plots": True},
        "export": {"enabled": False},
        "replay": {"budget": replay_budget},
    }


def _image_recipe(size: int, epochs: tuple[int, int]) -> dict:
    return {
        "data": {"source": "folder", "val_fraction": 0.0, "test_fraction": 0.0},
        "backbone": {"name": "efficientnet_lite0", "weights": "imagenet", "image_size": size},
        "head": {"dropout": 0.2},
        "phases": [
            {"name": "head", "train": "head", "epochs": epochs[0], "learning_rate": 0.003},
            {
                "name": "finetune",
                "train": "all",
                "epochs": epochs[1],
                "learning_rate": 0.001,
                "schedule": "cosine",
                "warmup_epochs": 0.5,
                "layerwise_decay": 0.7,
            },
        ],  # fmt: skip
        **_run_sections(top_k=3, replay_budget=200),
    }


TEXT_RECIPE = {
    "modality": "text",
    "data": {"source": "text", "val_fraction": 0.0, "test_fraction": 0.0},
    "backbone": {
        "name": "models/all-MiniLM-L6-v2",
        "sequence_length": 32,
        "kwargs": {"pooling": "mean"},
    },  # fmt: skip
    "head": {"dropout": 0.1},
    "phases": [
        {"name": "head", "train": "head", "epochs": 4, "learning_rate": 0.005},
        {
            "name": "top2",
            "train": "top:2",
            "epochs": 3,
            "learning_rate": 0.0002,
            "schedule": "cosine",
            "warmup_epochs": 0.3,
            "layerwise_decay": 0.7,
        },
    ],  # fmt: skip
    **_run_sections(top_k=2, replay_budget=120),
}

SUITES = {
    "digits": Suite(
        [[str(d) for d in range(5)], [str(d) for d in range(5, 10)]],
        _image_recipe(64, (3, 4)),
        "digits",
    ),  # fmt: skip
    "fashion": Suite(
        [
            ["t-shirt_top", "trouser", "pullover", "dress"],
            ["coat", "sandal", "shirt"],
            ["sneaker", "bag", "ankle_boot"],
        ],
        _image_recipe(32, (2, 3)),
        "fashion",
    ),  # fmt: skip
    "debian": Suite(
        [["games", "graphics"], ["mail", "net"], ["science", "sound"]], TEXT_RECIPE, "debian"
    ),  # fmt: skip
}


# --------------------------------------------------------------------------- data


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def _carve(files: list[Path], fractions: dict[str, float], seed: int) -> dict[str, list[Path]]:
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = round(len(files) * fractions.get("test", 0.0))
    n_val = round(len(files) * fractions["val"])
    picked = [files[i] for i in order]
    return {"test": picked[:n_test], "val": picked[n_test : n_test + n_val],
            "train": picked[n_test + n_val :]}  # fmt: skip


def write_tasks(suite: Suite, root: Path, seed: int = 42) -> tuple[list[Path], Path]:
    """Each group's data (pre-split) under root/taskN, and all of it under root/all."""
    root.mkdir(parents=True, exist_ok=True)
    if suite.source == "debian":
        return _text_tasks(suite, root, seed)
    tasks = [root / f"task{i + 1}" for i in range(len(suite.groups))]
    for task, group in zip(tasks, suite.groups, strict=True):
        for k, name in enumerate(group):
            for split, files in _image_files(suite.source, name, seed + k).items():
                for f in files:
                    for folder in (task, root / "all"):
                        _link(f, folder / split / name / f.name)
    return tasks, root / "all"


def _image_files(source: str, name: str, seed: int) -> dict[str, list[Path]]:
    if source == "digits":
        files = sorted((ROOT / "data" / "digits" / name).glob("*.png"))
        return _carve(files, {"val": 0.15, "test": 0.2}, seed)
    base = ROOT / "data" / "fashion_mnist"
    parts = _carve(sorted((base / "train" / name).glob("*.png")), {"val": 0.1}, seed)
    parts["test"] = sorted((base / "test" / name).glob("*.png"))
    return parts


def _text_tasks(suite: Suite, root: Path, seed: int) -> tuple[list[Path], Path]:
    with open(ROOT / "data" / "debian_sections" / "texts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_class: dict[str, list[dict]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    tasks, everything = [], []
    for i, group in enumerate(suite.groups):
        out = []
        for k, name in enumerate(group):
            for split, items in _carve(by_class[name], {"val": 0.1, "test": 0.2}, seed + k).items():
                out += [{"text": r["text"], "label": name, "split": split} for r in items]
        tasks.append(_write_csv(root / f"task{i + 1}.csv", out))
        everything += out
    return tasks, _write_csv(root / "all.csv", everything)


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- runs


def _timed(fn, *args, **kwargs):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    result = fn(*args, **kwargs)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return result, time.perf_counter() - wall0, usage.ru_utime + usage.ru_stime - cpu0


def run_suite(
    name: str,
    strategies: list[str],
    runs_dir: Path,
    overrides: list[str],
    *,
    continue_overrides: list[str] = (),
    first_run: str | None = None,
    retrain: bool = True,
    max_steps: int | None = None,
) -> dict:
    """The suite's first run (or `first_run`, a finished one), each strategy's continue steps
    (`continue_overrides` after `overrides`; the first `max_steps` groups after the first, or all),
    and the retrain on everything (unless not `retrain`)."""
    import tltk

    suite = SUITES[name]
    tasks, everything = write_tasks(suite, ROOT / "data" / "continual" / name)
    base = {**suite.recipe, "name": f"cl_{name}", "train": {**suite.recipe["train"],
            "runs_dir": str(runs_dir)}}  # fmt: skip
    if first_run is None:
        first = _with_data(base, tasks[0])
        result, wall, cpu = _timed(tltk.train, first, overrides=overrides, resume=False)
        past_dir, accuracy = result.run_dir, result.metrics["accuracy"]
    else:
        past_dir, wall, cpu = Path(first_run).resolve(), None, None
        accuracy = json.loads((past_dir / "metrics.json").read_text())["accuracy"]
    rows = {"first": {"run": str(past_dir), "accuracy": accuracy, "wall_s": wall, "cpu_s": cpu}}
    print(f"first group: accuracy {accuracy:.4f} ({past_dir}; wall {wall} s, cpu {cpu} s)")
    for strategy in strategies:
        past, steps = past_dir, []
        for task in tasks[1:][:max_steps]:
            sets = [*overrides, *continue_overrides, f"continue_from.strategy={strategy}"]
            done, wall, cpu = _timed(tltk.continue_run, past, task, overrides=sets, resume=False)
            block = done.metrics["continual"]
            steps.append({**block["lineage"][-1], "wall_s": wall, "cpu_s": cpu})
            past = done.run_dir
        rows[strategy] = steps
        _print_steps(strategy, steps)
    if not retrain:
        return rows
    full = _with_data({**base, "replay": {"budget": 0}}, everything)
    done, wall, cpu = _timed(tltk.train, full, overrides=overrides, resume=False)
    rows["retrain"] = {"accuracy": done.metrics["accuracy"], "wall_s": wall, "cpu_s": cpu,
                       "run": str(done.run_dir)}  # fmt: skip
    print(f"retrain on everything: accuracy {done.metrics['accuracy']:.4f} ({wall:.0f} s, cpu "
          f"{cpu:.0f} s)")  # fmt: skip
    for strategy in strategies:
        steps = rows[strategy]
        print(f"{strategy:>18}: last step {steps[-1]['cpu_s'] / cpu:.0%} of the retrain's CPU, "
              f"all steps {sum(s['cpu_s'] for s in steps) / cpu:.0%}")  # fmt: skip
    return rows


def _with_data(recipe: dict, path: Path) -> dict:
    return {**recipe, "data": {**recipe["data"], "path": str(path)}}


def _print_steps(strategy: str, steps: list[dict]) -> None:
    for s in steps:
        print(
            f"{strategy:>18} step {s['step']}: old {s['old_before']:.4f} -> {s['old_after']:.4f} "
            f"(forgetting {s['forgetting']:+.4f}; among the old classes "
            f"{s.get('old_among_old') or 0:.4f}), new {s['new']:.4f}, overall "
            f"{s['overall']:.4f} ({s['wall_s']:.0f} s, cpu {s['cpu_s']:.0f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES),
        help="comma-separated; empty: the first run and the retrain only",
    )  # fmt: skip
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench_continual"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--continue-set", action="append", default=[], metavar="KEY=VALUE",
                        help="overrides of the continue steps only (after --set)")  # fmt: skip
    parser.add_argument("--first", help="a finished first run of the suite to continue from")
    parser.add_argument("--no-retrain", action="store_true", help="skip the retrain row")
    parser.add_argument("--steps", type=int, help="continue through this many groups only")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    rows = run_suite(
        args.suite, [s for s in args.strategies.split(",") if s], Path(args.runs_dir), args.set,
        continue_overrides=args.continue_set, first_run=args.first, retrain=not args.no_retrain,
        max_steps=args.steps,
    )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(yaml.safe_dump(rows, sort_keys=False))


if __name__ == "__main__":
    main()
