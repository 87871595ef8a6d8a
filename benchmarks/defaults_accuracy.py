"""tltk's defaults vs the hand-written example recipes vs classical baselines, on the two cases
of the "better models by default" issue, on the same fixed splits, in one run.

    fashion_fewshot  Fashion-MNIST group B (ankle boot, bag, sandal, shirt, sneaker): 40 training
                     and 20 val images a class (data/accuracy/fashion_fewshot/seed0), tested on
                     all 5,000 of group B's test images. Backbone: MobileNetV3-Small trained by
                     tltk (recipes/fashion_mnist_pretrain.yaml) on group A only (the other five
                     classes, data/accuracy/fashion_group_a).
    debian_sections  10,000 Debian package descriptions, 51 sections in their natural
                     proportions, 70/10/20 (data/accuracy/debian_sections/seed0). Backbone:
                     all-MiniLM-L6-v2, 32 tokens, mean pooling.

Rows per case: the classical baseline (logistic regression on raw pixels / TF-IDF word 1-2
grams + logistic regression, C chosen on val), the example recipe the issue used
(digits_transfer.yaml / text_minilm.yaml with the data path, and for images the backbone
weights, changed), that recipe with `head.init: random` (its head phase starts from a random
head, as before the linear probe), and tltk's defaults (a recipe of data + backbone only: no
phases, head, augmentation or callbacks). Each row's CPU seconds (this process, every thread)
and wall seconds are printed beside it.

    .venv/bin/python benchmarks/defaults_accuracy.py --work runs/defaults_accuracy
    .venv/bin/python benchmarks/defaults_accuracy.py --cases fashion_fewshot

A run started again with the same `--work` reuses the pretrained backbone and the rows it has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.text_baseline import baseline as tfidf_baseline  # noqa: E402

DATA = ROOT / "data" / "accuracy"
FASHION = DATA / "fashion_fewshot" / "seed0"
SECTIONS = DATA / "debian_sections" / "seed0" / "texts.csv"


def housekeeping(recipe: dict, work: Path) -> dict:
    train = recipe.setdefault("train", {})
    train.update(runs_dir=str(work / "runs"), verbose=2)
    train.setdefault("callbacks", {})["tensorboard"] = False
    recipe["export"] = {"enabled": False}
    recipe.setdefault("evaluate", {})["plots"] = False
    return recipe


def hand(file: str, name: str, data: dict, work: Path, backbone: dict | None = None) -> dict:
    """An example recipe with its data (and the given backbone keys) changed."""
    recipe = yaml.safe_load((ROOT / "recipes" / file).read_text())
    recipe.update(name=name, data=data)
    recipe["backbone"].update(backbone or {})
    return housekeeping(recipe, work)


def random_head(recipe: dict) -> dict:
    """The recipe as tltk trained it before the linear probe: a randomly initialised head."""
    recipe.setdefault("head", {})["init"] = "random"
    return recipe


def pretrained_fashion_a(work: Path) -> str:
    """The run folder of recipes/fashion_mnist_pretrain.yaml trained on group A (once)."""
    import tltk

    done = work / "runs" / "pretrain-fashionA" / "latest"
    if (done / "backbone.weights.h5").is_file():
        return str(done)
    data = {"source": "folder", "path": str(DATA / "fashion_group_a"),
            "splits": {"train": "train", "test": "test"}, "val_fraction": 0.1}  # fmt: skip
    recipe = hand("fashion_mnist_pretrain.yaml", "pretrain-fashionA", data, work)
    result = tltk.train(recipe, resume=False)
    print(f"pretraining on group A: test accuracy {result.metrics['accuracy']:.3f}", flush=True)
    return str(result.run_dir)


def tltk_row(recipe: dict) -> dict:
    import keras

    import tltk

    keras.backend.clear_session()
    result = tltk.train(recipe, resume=False)
    state = json.loads((result.run_dir / "state.json").read_text())
    out = {"accuracy": result.metrics["accuracy"], "f1_macro": result.metrics["f1_macro"]}
    if state.get("probe"):
        out["probe_val_accuracy"] = state["probe"].get("val_accuracy")
    out["steps"] = [p.get("end_epoch") for p in state["phases"]]
    return out


def pixels_row(data) -> dict:
    """Logistic regression on raw pixels scaled to [0, 1], C chosen on val."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    def xy(split):
        examples = data.splits[split]
        images = [np.asarray(Image.open(p).convert("L"), np.float64).reshape(-1) / 255.0
                  for p in examples.examples]  # fmt: skip
        return np.stack(images), examples.labels

    (x, y), (xv, yv), (xt, yt) = xy("train"), xy("val"), xy("test")
    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(x, y) for c in (0.01, 0.1, 1.0, 10.0)}
    best = max(fits, key=lambda c: (accuracy_score(yv, fits[c].predict(xv)), -c))
    predicted = fits[best].predict(xt)
    return {"accuracy": float(accuracy_score(yt, predicted)),
            "f1_macro": float(f1_score(yt, predicted, average="macro")), "C": best}  # fmt: skip


def load(recipe: dict):
    from tltk.recipe import load_recipe
    from tltk.tasks import load_data

    return load_data(load_recipe(recipe))


def fashion_rows(work: Path) -> dict:
    weights = pretrained_fashion_a(work)
    data = {"source": "folder", "path": str(FASHION)}
    backbone = {"name": "mobilenet_v3_small", "weights": weights, "image_size": 32}
    default = housekeeping({"name": "fashion-default", "data": data, "backbone": backbone}, work)
    return {
        "LR on pixels": lambda: pixels_row(load(default)),
        "tltk digits_transfer.yaml": lambda: tltk_row(
            hand("digits_transfer.yaml", "fashion-hand", data, work, backbone)
        ),
        "tltk digits_transfer.yaml, head.init: random": lambda: tltk_row(
            random_head(hand("digits_transfer.yaml", "fashion-hand-random", data, work, backbone))
        ),
        "tltk defaults": lambda: tltk_row(default),
    }


def sections_rows(work: Path) -> dict:
    data = {"source": "text", "path": str(SECTIONS)}
    backbone = {"name": "models/all-MiniLM-L6-v2", "sequence_length": 32,
                "kwargs": {"pooling": "mean"}}  # fmt: skip
    default = housekeeping(
        {"name": "sections-default", "modality": "text", "data": data, "backbone": backbone}, work
    )
    return {
        "TF-IDF + LR": lambda: tfidf_baseline(load(default)),
        "tltk defaults": lambda: tltk_row(default),
        "tltk text_minilm.yaml": lambda: tltk_row(
            hand("text_minilm.yaml", "sections-hand", data, work)
        ),
        "tltk text_minilm.yaml, head.init: random": lambda: tltk_row(
            random_head(hand("text_minilm.yaml", "sections-hand-random", data, work))
        ),
    }


CASES = {"fashion_fewshot": fashion_rows, "debian_sections": sections_rows}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--work", type=Path, default=Path("runs") / "defaults_accuracy")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    done_file = args.work / "rows.jsonl"
    done = [json.loads(line) for line in done_file.read_text().splitlines()] if (
        done_file.is_file()
    ) else []  # fmt: skip
    for case in args.cases.split(","):
        for method, fn in CASES[case](args.work).items():
            if any(r["case"] == case and r["method"] == method for r in done):
                continue
            print(f"== {case}: {method}", flush=True)
            cpu, wall = time.process_time(), time.perf_counter()
            row = {"case": case, "method": method, **fn()}
            row.update(cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall)
            done.append(row)
            with done_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print("| case | method | accuracy | macro-F1 | CPU s | wall s |\n|---|---|---|---|---|---|")
    for r in done:
        print(f"| {r['case']} | {r['method']} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} | "
              f"{r['cpu_s']:.0f} | {r['wall_s']:.0f} |")  # fmt: skip
    return done


if __name__ == "__main__":
    main()
