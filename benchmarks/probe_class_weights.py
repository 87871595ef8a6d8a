"""The linear-probe head start with and without balanced class weights, on one case's cached
backbone features: what `head.class_weight` does to the head tltk's default plan starts from.

    .venv/bin/python benchmarks/probe_class_weights.py --case debian_sections \
        --work runs/accuracy/class_weights

The backbone's pooled features of every split are computed once (the recipe of the case's
`tltk default` row, through tltk's own pipeline) and kept in WORK/features-CASE-sSEED.npz, so a
second run only refits. Weightings: none, balanced (n / (k * count), `head.class_weight:
balanced`) and sqrt (the square root of balanced, normalised to mean 1 over the examples). Per
weighting:
- `probe`: `tltk.probe.fit_probe` as a run calls it (L2 strength chosen on val by the
  unweighted loss);
- `keras head`: the default head (dropout 0.2, a softmax Dense) on the cached features, Adam
  1e-3, batch 32, `--head-steps` steps (each value its own head) from Keras' initialiser
  (what the default plan's head phase does for `head.init: random`), weighted through
  `fit(class_weight=...)`.
Each is scored on the test split by `tltk.evaluate.compute_metrics`. Prints one line per row
and writes WORK/probe_cw-CASE-sSEED.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import accuracy, accuracy_methods  # noqa: E402
from benchmarks import accuracy_cases as cases  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", default="debian_sections")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("runs/accuracy/class_weights"))
    p.add_argument("--data-root", type=Path, default=Path("data"))
    p.add_argument("--head-steps", default="300", help="comma-separated: one head per value")
    args = p.parse_args(argv)
    from tltk import tasks
    from tltk.data import class_weights
    from tltk.evaluate import compute_metrics
    from tltk.recipe import load_recipe

    args.work.mkdir(parents=True, exist_ok=True)
    bench = cases.Bench(work=args.work, data_root=args.data_root)
    run = cases.CASES[args.case][0](bench, args.seed)
    data = accuracy._load(bench, run)
    row = next(r for r in run.rows if r.method.startswith("tltk default"))
    features = _features(args.work / f"features-{args.case}-s{args.seed}.npz", row.recipe, data)
    recipe = load_recipe(row.recipe)
    counts = np.bincount(data.splits["train"].labels, minlength=data.num_classes)
    out = {"case": args.case, "seed": args.seed, "train_counts": counts.tolist(), "rows": []}
    pairs = {s: (features[s], tasks.targets(recipe, data, s)) for s in ("train", "val")}
    balanced = class_weights(data.splits["train"].labels, data.num_classes)
    sqrt = {c: w**0.5 for c, w in balanced.items()}
    mean = float(np.mean([sqrt[int(c)] for c in data.splits["train"].labels]))
    weightings = {
        "none": None,
        "balanced": balanced,
        "sqrt": {c: w / mean for c, w in sqrt.items()},
    }
    for name, weights in weightings.items():
        steps = [int(n) for n in args.head_steps.split(",")]
        for method, n in [("probe", 0)] + [("keras head", n) for n in steps]:
            fit = _probe if method == "probe" else _keras_head
            cpu = time.process_time()
            scores, facts = fit(pairs, features["test"], weights, n)
            test = compute_metrics(
                data.splits["test"].labels, scores, data.class_names, task="classification",
                top_k=1,
            )  # fmt: skip
            result = {
                "method": method, "class_weight": name, **facts,
                **accuracy_methods.headline(test), "fit_cpu_s": time.process_time() - cpu,
            }  # fmt: skip
            out["rows"].append(result)
            print(json.dumps(result), flush=True)
    (args.work / f"probe_cw-{args.case}-s{args.seed}.json").write_text(json.dumps(out, indent=1))
    return out


def _probe(pairs, test_x, weights, _steps) -> tuple[np.ndarray, dict]:
    from tltk.probe import fit_probe

    probe = fit_probe("softmax", pairs["train"], pairs["val"], class_weight=weights)
    facts = {"strength": probe.strength, **{f"val_{k}": v for k, v in probe.val.items()}}
    return probe.scores(test_x, "softmax"), facts


def _keras_head(pairs, test_x, weights, steps) -> tuple[np.ndarray, dict]:
    import keras

    (x, y), (vx, vy) = pairs["train"], pairs["val"]
    keras.utils.set_random_seed(0)
    head = keras.Sequential(
        [keras.Input(x.shape[1:]), keras.layers.Dropout(0.2),
         keras.layers.Dense(y.shape[1], activation="softmax")]
    )  # fmt: skip
    head.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    epochs = max(1, round(steps * 32 / len(x)))
    head.fit(x, y, batch_size=32, epochs=epochs, class_weight=weights, verbose=0)
    val_loss, val_accuracy = head.evaluate(vx, vy, verbose=0)
    facts = {"steps": epochs * -(-len(x) // 32), "val_loss": val_loss, "val_accuracy": val_accuracy}
    return head.predict(test_x, verbose=0), facts


def _features(path: Path, recipe: dict, data) -> dict[str, np.ndarray]:
    if path.is_file():
        with np.load(path) as saved:
            return dict(saved)
    cpu, wall = time.process_time(), time.perf_counter()
    features = accuracy_methods.pooled_features(recipe, data)
    np.savez(path, **features)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"features: {cpu:.0f} CPU-s, {wall:.0f} wall-s", flush=True)
    return features


if __name__ == "__main__":
    main()
