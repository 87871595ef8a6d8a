"""TF-IDF + logistic regression vs a finished tltk text run, on the SAME test split.

The data is loaded exactly as training loads it (`tltk.tasks.load_data` with the run's own
recipe: same file, seed, fractions and cleaning), so both models are scored on identical test
texts. The baseline's C is chosen on the validation split, then it is fit on the train split
alone (like tltk, which uses val only for early stopping).

    .venv/bin/python benchmarks/text_baseline.py runs/text_minilm/latest
    .venv/bin/python benchmarks/text_baseline.py --recipe recipes/text_minilm.yaml   # baseline only
    .venv/bin/python benchmarks/text_baseline.py --speed --recipe recipes/text_minilm.yaml

`--speed` also times training steps of each of the recipe's phases (train sequences/s: the
median of a few batches after a warm-up, tokenization included, through tltk's own pipeline,
groups and optimizers) and inference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tltk.recipe import load_recipe  # noqa: E402
from tltk.tasks import load_data  # noqa: E402


def baseline(data, *, grid=(0.3, 1.0, 3.0, 10.0, 30.0)) -> dict:
    def fit(c: float):
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=c, max_iter=2000),
        )
        return model.fit(list(data.splits["train"].examples), data.splits["train"].labels)

    val = data.splits["val"]
    scores = {c: accuracy_score(val.labels, fit(c).predict(list(val.examples))) for c in grid}
    best = max(scores, key=lambda c: (scores[c], -c))
    test = data.splits["test"]
    predicted = fit(best).predict(list(test.examples))
    return {
        "accuracy": float(accuracy_score(test.labels, predicted)),
        "f1_macro": float(f1_score(test.labels, predicted, average="macro")),
        "C": best,
        "n": len(test),
    }


def speed(recipe, data, *, steps: int = 6, warmup: int = 2) -> dict[str, float]:
    """Train sequences/s per phase (median step) and inference sequences/s, on this machine."""
    import keras

    from tltk import phases as ph
    from tltk import tasks

    keras.utils.set_random_seed(recipe.seed)
    task_model = tasks.build_task_model(recipe, data)
    batch = recipe.train.batch_size
    ds = tasks.pipeline(recipe, data, "train", task_model, batch, training=True)  # endless
    out = {}
    for i, phase in enumerate(recipe.phases or ph.default_phases(len(task_model.backbone_groups))):
        train = ph.trainable_groups(phase.train, task_model.backbone_groups)
        ph.set_trainable(task_model.groups, train, phase.batchnorm)
        optimizer = ph.make_optimizer(
            phase,
            steps_per_epoch=100,
            multipliers=ph.lr_multipliers(task_model.groups, train, phase),
        )
        task_model.model.compile(optimizer=optimizer, loss=tasks.loss(recipe))
        times = []
        for x, y in ds.take(warmup + steps):
            start = time.perf_counter()
            task_model.model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        out[f"train {phase.name or f'phase{i}'} ({phase.train})"] = batch / np.median(
            times[warmup:]
        )
    times = []
    for x, _ in ds.take(warmup + steps):
        start = time.perf_counter()
        task_model.model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    out["inference"] = batch / np.median(times[warmup:])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", help="a finished tltk run folder (RUN/recipe.yaml)")
    parser.add_argument("--recipe", help="a recipe, when there is no run to compare with")
    parser.add_argument("--speed", action="store_true", help="also time training and inference")
    args = parser.parse_args(argv)
    if not args.run and not args.recipe:
        parser.error("give a run folder or --recipe")
    recipe = load_recipe(Path(args.run) / "recipe.yaml" if args.run else args.recipe)
    if recipe.modality != "text" or recipe.multi_label or recipe.head.type != "classification":
        raise SystemExit(f"{recipe.name}: the baseline compares single-label text classifiers")
    data = load_data(recipe)
    rows = {"TF-IDF + LogisticRegression": baseline(data)}
    if args.run:
        metrics = json.loads((Path(args.run) / "metrics.json").read_text())
        report = json.loads((Path(args.run) / "data_report.json").read_text())
        if report["counts"] != data.report["counts"]:
            raise SystemExit(f"{args.run}: its splits differ from the recipe's data as loaded now")
        rows[f"tltk {recipe.name} ({Path(args.run).resolve().name})"] = {
            "accuracy": metrics["accuracy"],
            "f1_macro": metrics["f1_macro"],
            "n": metrics["n"],
        }
    print(
        f"test split of {recipe.data.path}: {len(data.splits['test'])} texts, "
        f"{data.num_classes} classes, seed {recipe.seed}"
    )
    if args.speed:
        for what, value in speed(recipe, data).items():
            print(f"speed: {what}: {value:.1f} sequences/s (batch {recipe.train.batch_size})")
    width = max(map(len, rows))
    print(f"{'model':<{width}}  accuracy  macro-F1")
    for name, r in rows.items():
        print(f"{name:<{width}}  {r['accuracy']:8.4f}  {r['f1_macro']:8.4f}")
    print(json.dumps({k: {m: v for m, v in r.items()} for k, r in rows.items()}, default=float))


if __name__ == "__main__":
    main()
