"""`tltk auto DATA --budget 20m`: a recipe chosen from the data and what is available offline,
searched within the budget, the best trained, evaluated and exported.

The choices (`plan`) are a few readable rules, each with its reason printed:
- images (a folder of class folders): EfficientNet-Lite0 with ImageNet weights when they are
  converted locally (`tltk.backbones.imagenet_weights.weights_dir()`), at 224 px for photos
  of 160 px and more, else at 128 px; without them, a from-scratch ResNet-20 at 32 px for small
  images (under 64 px), else MobileNetV3-Small from scratch at 128 px;
- texts (a CSV/TSV/JSONL file with `text` and `label` columns): the MiniLM folder
  `models/all-MiniLM-L6-v2` when it is there, with a sequence length that covers 95 % of the
  texts (16..128 tokens, about 1.4 tokens a word), else the from-scratch text RNN.
The search covers the fine-tuning phase (learning rate and how much of the backbone trains), so
its trials share one trained head; it gets 70 % of the budget, the best recipe's training the
rest.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from tltk.data.extensions import IMAGE_EXTENSIONS
from tltk.errors import TltkError
from tltk.recipe import Recipe, load_recipe
from tltk.recipe.tuning import parse_duration

MINILM = Path("models/all-MiniLM-L6-v2")
SEARCH_SHARE = 0.7
TEXT_FILES = (".csv", ".tsv", ".jsonl")


class AutoError(TltkError, ValueError):
    """Data `tltk auto` cannot plan for."""


def plan(data: str | Path, budget: str | float, *, name: str | None = None) -> tuple[dict, list]:
    """(recipe mapping, reasons): what `auto` will search, and why."""
    data = Path(data)
    seconds = parse_duration(budget) if isinstance(budget, str) else float(budget)
    if data.is_dir():
        raw, reasons = _image_plan(data)
    elif data.suffix.lower() in TEXT_FILES:
        raw, reasons = _text_plan(data)
    else:
        raise AutoError(
            f"{data}: give a folder of class folders (images) or a {'/'.join(TEXT_FILES)} file "
            "of texts with `text` and `label` columns"
        )
    raw["name"] = name or f"auto_{data.stem}"
    raw["tune"] = {
        "space": {
            "phases.1.learning_rate": {"log": [1.0e-5, 1.0e-3]},
            "phases.1.train": raw.pop("_train_choices"),
        },
        "objective": "val_loss",
        "tuner": "bayesian",
        "max_trials": None,
        "max_time": round(seconds * SEARCH_SHARE, 1),
    }
    reasons.append(
        f"search: Bayesian optimisation of the fine-tuning phase's learning rate and trained "
        f"blocks for {seconds * SEARCH_SHARE:.0f} s of the {seconds:.0f} s budget (the rest "
        "trains the best recipe); trials share one trained head"
    )
    return raw, reasons


def _phases(head_lr: float, fine_lr: float) -> list[dict]:
    return [
        {"name": "head", "train": "head", "epochs": 3, "learning_rate": head_lr},
        {"name": "finetune", "train": "top:2", "epochs": 3, "learning_rate": fine_lr,
         "schedule": "cosine"},
    ]  # fmt: skip


def _image_plan(folder: Path) -> tuple[dict, list]:
    from PIL import Image

    from tltk.backbones.imagenet_weights import weights_dir

    images = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
    classes = sorted({p.parent.name for p in images})
    if len(classes) < 2:
        raise AutoError(f"{folder}: found {len(classes)} class folder(s) of images; need 2+")
    sides = []
    for path in images[:: max(1, len(images) // 25)]:  # about 25, spread over the classes
        with Image.open(path) as image:
            sides.append(min(image.size))
    side = statistics.median(sides)
    reasons = [f"data: {len(images)} images in {len(classes)} classes, median side {side:.0f} px"]
    if (weights_dir() / "efficientnet_lite0_imagenet_notop.weights.h5").is_file():
        size = 224 if side >= 160 else 128
        backbone = {"name": "efficientnet_lite0", "weights": "imagenet", "image_size": size}
        reasons.append(
            f"backbone: efficientnet_lite0, ImageNet weights found offline in {weights_dir()}, "
            f"at {size} px ({'photos' if size == 224 else 'small images'})"
        )
    elif side < 64:
        backbone = {"name": "resnet20", "weights": "none", "image_size": 32}
        reasons.append("backbone: resnet20 from scratch at 32 px: small images, no weights offline")
    else:
        backbone = {"name": "mobilenet_v3_small", "weights": "none", "image_size": 128}
        reasons.append("backbone: mobilenet_v3_small from scratch at 128 px: no weights offline")
    raw = {
        "data": {"path": str(folder)},
        "backbone": backbone,
        "augment": {"policy": "light"},
        "phases": _phases(1e-3, 1e-4),
        "_train_choices": ["top:1", "top:2", "all"],
    }
    return raw, reasons


def _text_plan(path: Path) -> tuple[dict, list]:
    texts = _read_texts(path)
    words = sorted(len(t.split()) for t in texts)
    p95 = words[int(0.95 * (len(words) - 1))] if words else 0
    reasons = [f"data: {len(texts)} texts in {path}, 95 % have at most {p95} words"]
    raw: dict = {"modality": "text", "data": {"source": "text", "path": str(path)}}
    if (MINILM / "config.json").is_file():
        length = min(128, max(16, 1 << max(0, int(p95 * 1.4) - 1).bit_length()))
        raw["backbone"] = {"name": str(MINILM), "sequence_length": length,
                           "kwargs": {"pooling": "mean"}}  # fmt: skip
        raw["phases"] = _phases(5e-3, 2e-4)
        raw["_train_choices"] = ["top:1", "top:2", "all"]
        reasons.append(f"backbone: {MINILM} (found offline), sequence length {length} tokens")
    else:
        raw["backbone"] = {"name": "text_rnn", "weights": "none"}
        raw["phases"] = _phases(3e-3, 1e-3)
        raw["_train_choices"] = ["top:1", "all"]
        reasons.append(f"backbone: text_rnn from scratch ({MINILM} is not here)")
    return raw, reasons


def _read_texts(path: Path, column: str = "text") -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        if path.suffix.lower() == ".jsonl":
            return [str(json.loads(line).get(column, "")) for line in f if line.strip()]
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        rows = csv.DictReader(f, delimiter=delimiter)
        if column not in (rows.fieldnames or []):
            raise AutoError(f"{path}: no `{column}` column (has {rows.fieldnames})")
        return [row[column] or "" for row in rows]


def auto(
    data: str | Path, budget: str | float = "20m", *, overrides: list[str] | tuple = ()
) -> tuple[Recipe, object]:
    """Plan, search within the budget, train + evaluate + export the best recipe."""
    from tltk.log import say
    from tltk.tuning.api import tune

    raw, reasons = plan(data, budget)
    for reason in reasons:
        say(f"auto: {reason}")
    recipe = load_recipe(raw, overrides)
    return recipe, tune(recipe, train_best=True)
