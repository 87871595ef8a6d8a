"""What the accuracy benchmark compares: tltk runs, and classical baselines on the same split.

Every method is scored by `tltk.evaluate.compute_metrics` on the test split, so accuracy and
macro-F1 (multi-label: subset accuracy, micro/macro F1 at 0.5) mean the same for every row.
Baselines pick LogisticRegression's C on the val split, then are fit on train alone, as tltk
uses val only to stop early.

- `tltk_run`: `tltk.train` of a recipe; its split is checked against the baselines' one.
- `pixels_lr`: LogisticRegression on the raw pixels at their native size (scaled).
- `linear_probe`: LogisticRegression on the pooled features of the backbone a tltk recipe
  starts from, computed through tltk's own input pipeline (same resize and normalisation).
- `tfidf_lr`: TF-IDF word 1-2 grams + LogisticRegression (one-vs-rest for multi-label).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from tltk.data import LabelledData
from tltk.evaluate import compute_metrics

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
TEXT_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
HEADLINE = ("accuracy", "f1_macro", "f1_micro", "subset_accuracy")


def headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in HEADLINE if metrics.get(k) is not None}


def tltk_run(recipe: dict, data: LabelledData) -> dict:
    """Train `recipe` with tltk (a new run) and return its test metrics."""
    import keras

    import tltk

    keras.backend.clear_session()
    result = tltk.train(recipe, resume=False)
    check_same_split(result.run_dir / "splits.csv", data)
    return {**headline(result.metrics), **run_facts(result.run_dir), "run": str(result.run_dir)}


def run_facts(run_dir: Path) -> dict:
    """What the run's state.json says of how it trained: the probe's val accuracy (a probe
    start), and the epoch each phase ended at (did early stopping end it?)."""
    state = json.loads((run_dir / "state.json").read_text())
    out: dict = {"phase_end_epochs": [p.get("end_epoch") for p in state.get("phases", [])]}
    if state.get("probe"):
        out["probe_val_accuracy"] = state["probe"].get("val_accuracy")
    return out


def check_same_split(splits_csv: Path, data: LabelledData) -> None:
    """Refuse a run whose train/val/test examples differ from the baselines' ones."""
    with open(splits_csv, newline="", encoding="utf-8") as f:
        ran = Counter((r["split"], r["example"]) for r in csv.DictReader(f))
    expected = Counter(
        (name, str(example)) for name, split in data.splits.items() for example in split.examples
    )
    if ran != expected:
        raise SystemExit(f"{splits_csv}: the run's splits differ from the baselines' data")


def pixels_lr(data: LabelledData, task: str) -> dict:
    """LogisticRegression on grey pixels at native size, 0..1, standardised."""
    features = {
        name: np.stack([_grey_pixels(p) for p in split.examples])
        for name, split in data.splits.items()
    }
    return _logreg(features, data, task, C_GRID)


def _grey_pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32).ravel() / 255.0


def linear_probe(recipe: dict, data: LabelledData, task: str) -> dict:
    """LogisticRegression on the pooled backbone features `recipe`'s model starts from."""
    return _logreg(pooled_features(recipe, data), data, task, C_GRID)


def pooled_features(recipe: dict, data: LabelledData) -> dict[str, np.ndarray]:
    """Per split, the head's input (the pooled, float32 backbone features) of the model that
    `tltk.train(recipe)` would build, before any training."""
    import keras

    from tltk import tasks
    from tltk.data.pipeline import predict_unpadded
    from tltk.heads import HEAD_PREFIX
    from tltk.recipe import load_recipe

    keras.backend.clear_session()
    resolved = load_recipe(recipe)
    task_model = tasks.build_task_model(resolved, data)
    pooled = task_model.model.get_layer(f"{HEAD_PREFIX}cast").output
    features = keras.Model(task_model.model.input, pooled)
    out = {}
    for name, split in data.splits.items():
        ds = tasks.pipeline(resolved, data, name, task_model, 64, training=False)
        out[name] = predict_unpadded(features, ds, len(split))
    return out


def tfidf_lr(data: LabelledData, task: str) -> dict:
    """TF-IDF (word 1-2 grams, sublinear tf, fit on train) + LogisticRegression."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    vectorizer.fit([str(t) for t in data.splits["train"].examples])
    features = {
        name: vectorizer.transform([str(t) for t in split.examples])
        for name, split in data.splits.items()
    }
    return _logreg(features, data, task, TEXT_C_GRID, scale=False)


def _logreg(features: dict, data: LabelledData, task: str, grid, *, scale: bool = True) -> dict:
    """C from `grid` by val accuracy (multi-label: val micro-F1; ties: the smaller C), then
    the train fit's test metrics.

    One BLAS thread: these matrices are small, and on 2 busy cores a multi-threaded solver
    spent 60x the CPU time (one probe's fits: 49 CPU-s, here 0.8). Single-label fits
    warm-start from the previous C (the same optimum, fewer iterations).
    """
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if scale:
        scaler = StandardScaler().fit(features["train"])
        features = {k: scaler.transform(v) for k, v in features.items()}
    key = "f1_micro" if task == "multilabel" else "accuracy"
    labels = data.splits["train"].labels
    best: tuple | None = None
    with threadpool_limits(1):
        model = None
        for c in sorted(grid):
            model = _fit(features["train"], labels, c, task, model)
            val = _metrics(model, features["val"], data, "val", task)[key]
            if best is None or val > best[1]:  # ascending C: a tie keeps the smaller
                best = (c, val, _metrics(model, features["test"], data, "test", task))
    c, val, test = best
    return {**headline(test), "C": c, "val_" + key: val}


def _fit(x, labels: np.ndarray, c: float, task: str, previous=None):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if task == "multilabel":
        return OneVsRestClassifier(LogisticRegression(C=c, max_iter=3000)).fit(
            x, labels.astype(int)
        )
    model = previous or LogisticRegression(max_iter=3000, warm_start=True)
    return model.set_params(C=c).fit(x, labels)


def _metrics(model, x, data: LabelledData, split: str, task: str) -> dict:
    scores = model.predict_proba(x)
    if task != "multilabel":  # columns for every class, also one train never saw
        full = np.zeros((len(scores), data.num_classes), dtype=np.float64)
        full[:, model.classes_] = scores
        scores = full
    labels = data.splits[split].labels
    return compute_metrics(labels, scores, data.class_names, task=task, top_k=1)
