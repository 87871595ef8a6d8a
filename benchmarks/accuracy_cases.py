"""The accuracy benchmark's cases: real data, a fixed split per seed, the rows to compare.

Every tltk "default" row is the same template: the case's data, a backbone (+ `weights:`, the
pretrained run for transfer) and an image size or sequence length that follow the data, and
nothing else (no phases, head, augmentation or callbacks: tltk's defaults). The "hand" rows
are the repository's hand-written recipe for the case with only its data path (and, for
transfer, the weights' run) changed. Export is off for every run: it does not change the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from benchmarks import accuracy_data as ad

RECIPES = ad.ROOT / "recipes"
GROUP_A, GROUP_B = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
"""Fashion-MNIST classes: A (t-shirt_top, trouser, pullover, dress, coat) pretrains the
backbones of the few-shot case; B (sandal, shirt, sneaker, bag, ankle_boot) is the task."""
MINILM = {"name": "models/all-MiniLM-L6-v2", "sequence_length": 32}
"""32 word pieces hold 99.9% of the descriptions whole (the longest has 72)."""
LITE0 = {"name": "efficientnet_lite0", "weights": "imagenet", "image_size": 64}


@dataclass
class Row:
    method: str
    kind: str
    """tltk | pixels | probe | tfidf"""
    recipe: dict | None = None
    """tltk: the recipe trained; probe: the recipe whose starting backbone gives features."""


@dataclass
class CaseRun:
    """One seed of a case: the data (as the default recipe reads it) and its rows."""

    task: str
    data: dict
    """The `data` section every default recipe of this seed uses."""
    rows: list[Row] = field(default_factory=list)


@dataclass
class Bench:
    """Where a benchmark run keeps things, and the backbones it pretrained."""

    work: Path
    data_root: Path
    quick: bool = False
    pretrain: Callable[[str], Path] | None = None
    """name -> the finished pretraining run folder (trained on first use, see accuracy.py)."""
    pretrained: dict[str, Path] = field(default_factory=dict)
    overrides: dict[str, object] = field(default_factory=dict)
    """Dotted recipe keys -> values set in every tltk row's recipe (`--set`), e.g.
    {"train.ema": 0.99}: a candidate default scored on the same cases."""

    @property
    def runs(self) -> Path:
        return self.work / "runs"

    @property
    def bench_data(self) -> Path:
        return self.data_root / ("accuracy_quick" if self.quick else "accuracy")

    def recipe(self, name: str, seed: int, data: dict, backbone: dict, task: str) -> dict:
        """The default template."""
        recipe = {"name": name, "seed": seed, "data": data, "backbone": backbone}
        if task == "text":
            recipe["modality"] = "text"
        return self.housekeeping(recipe)

    def hand(self, file: str, name: str, seed: int, path: str, backbone: dict | None = None):
        """A hand-written recipe with its data path (and the `backbone` keys given) changed."""
        recipe = yaml.safe_load((RECIPES / file).read_text())
        recipe.update(name=name, seed=seed)
        recipe["data"]["path"] = path
        recipe["data"].pop("limit_per_class", None)
        recipe["backbone"].update(backbone or {})
        return self.housekeeping(recipe)

    def random_head(self, recipe: dict) -> dict:
        """`recipe` with `head.init: random`: its head phase starts from Keras' initialiser, as
        tltk trained it before the linear-probe start."""
        recipe = {
            **recipe,
            "name": recipe["name"] + "-random",
            "head": dict(recipe.get("head", {})),
        }
        recipe["head"]["init"] = "random"
        return recipe

    def housekeeping(self, recipe: dict) -> dict:
        train = recipe.setdefault("train", {})
        train.update(runs_dir=str(self.runs), verbose=2)
        if self.quick:
            train["steps_per_epoch"] = 2
        recipe["export"] = {"enabled": False}
        for key, value in self.overrides.items():
            *parents, last = key.split(".")
            section = recipe
            for name in parents:
                section = section.setdefault(name, {})
            section[last] = value
        return recipe


# --------------------------------------------------------------------------- pretraining


def pretraining_recipe(bench: Bench, key: str) -> dict:
    """The recipe that makes backbone `key`: the main job's pretraining (all ten classes), or
    the same recipes on Fashion-MNIST group A only."""
    file, group_a = {
        "fashion10_mnv3": ("fashion_mnist_pretrain.yaml", False),
        "fashionA_mnv3": ("fashion_mnist_pretrain.yaml", True),
        "fashionA_resnet8": ("fashion_mnist_pretrain_resnet.yaml", True),
    }[key]
    recipe = yaml.safe_load((RECIPES / file).read_text())
    recipe["name"] = f"pretrain-{key}"
    recipe["data"]["path"] = str(fashion_group_a(bench) if group_a else fashion_main_job(bench))
    if bench.quick:
        recipe["phases"][0]["epochs"] = 1
    return bench.housekeeping(recipe)


def fashion_main_job(bench: Bench) -> Path:
    """The main job's pretraining data, as `tltk data fashion_mnist data/fashion_mnist
    --per-class 800` writes it (reused when there)."""
    from tltk.data.offline import write_fashion_mnist

    return write_fashion_mnist(bench.data_root / "fashion_mnist", per_class=800)


def fashion_group_a(bench: Bench) -> Path:
    """Fashion-MNIST group A: 1,600 training images a class (8,000, as the main job's
    pretraining has) and all its test images."""
    per_class, test_per_class = (100, 100) if bench.quick else (1600, None)
    train_x, train_y, names = ad.fashion("train")
    test_x, test_y, _ = ad.fashion("test")
    train = ad.per_class_sample(train_y, GROUP_A, [per_class], seed=0)[0]
    test = np.flatnonzero(np.isin(test_y, GROUP_A))
    if test_per_class:
        test = ad.per_class_sample(test_y, GROUP_A, [test_per_class], seed=0)[0]
    params = {"case": "fashion_group_a", "per_class": per_class, "test": test_per_class}
    return ad.write_image_splits(
        bench.bench_data / "fashion_group_a",
        params,
        {"train": (train_x[train], train_y[train]), "test": (test_x[test], test_y[test])},
        names,
    )


# --------------------------------------------------------------------------- image cases


def image_rows(bench: Bench, case: str, seed: int, path: Path, backbones: dict) -> CaseRun:
    """LR on pixels, then a probe and a default tltk run per backbone {label: config}."""
    data = {"source": "folder", "path": str(path)}
    run = CaseRun("classification", data, [Row("LR pixels", "pixels")])
    for label, backbone in backbones.items():
        recipe = bench.recipe(f"{case}-{_slug(label)}-s{seed}", seed, data, backbone, "image")
        run.rows.append(Row(f"probe {label}", "probe", recipe))
        run.rows.append(Row(f"tltk default {label}", "tltk", recipe))
    return run


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_")


def fashion_weights(bench: Bench, key: str) -> str:
    return str(bench.pretrain(key))


def digits_fewshot(bench: Bench, seed: int) -> CaseRun:
    """10 training and 10 val digits a class (seeded), every other digit tested."""
    x, y, names = ad.digits()
    train, val, test = ad.per_class_sample(y, list(range(10)), [10, 10], seed=seed)
    path = ad.write_image_splits(
        bench.bench_data / f"digits_fewshot/seed{seed}",
        {"case": "digits_fewshot", "seed": seed, "per_class": [10, 10]},
        {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])},
        names,
    )
    return _digits_rows(bench, "digits_fewshot", seed, path)


def digits_full(bench: Bench, seed: int) -> CaseRun:
    """All digits, 65/15/20 stratified (the split sizes of digits_transfer.yaml)."""
    x, y, names = ad.digits()
    parts = ad.stratified_split(y, (0.15, 0.2), seed=seed)
    path = ad.write_image_splits(
        bench.bench_data / f"digits_full/seed{seed}",
        {"case": "digits_full", "seed": seed, "fractions": [0.15, 0.2]},
        {k: (x[v], y[v]) for k, v in parts.items()},
        names,
    )
    return _digits_rows(bench, "digits_full", seed, path)


def _digits_rows(bench: Bench, case: str, seed: int, path: Path) -> CaseRun:
    fashion = fashion_weights(bench, "fashion10_mnv3")
    mnv3 = {"name": "mobilenet_v3_small", "weights": fashion, "image_size": 32}
    run = image_rows(bench, case, seed, path, {"MNv3-S/FMNIST": mnv3, "Lite0/ImageNet": LITE0})
    run.rows += [
        Row("tltk digits_transfer.yaml", "tltk",
            bench.hand("digits_transfer.yaml", f"{case}-hand_transfer-s{seed}", seed, str(path),
                       {"weights": fashion})),
        Row("tltk digits_imagenet.yaml", "tltk",
            bench.hand("digits_imagenet.yaml", f"{case}-hand_imagenet-s{seed}", seed, str(path))),
    ]  # fmt: skip
    return run


def fashion_fewshot(bench: Bench, seed: int) -> CaseRun:
    """Group B: 40 training and 20 val images a class (seeded, from Fashion-MNIST's train
    set), tested on all of group B's test images; backbones pretrained on group A."""
    train_x, train_y, names = ad.fashion("train")
    test_x, test_y, _ = ad.fashion("test")
    train, val, _ = ad.per_class_sample(train_y, GROUP_B, [40, 20], seed=seed)
    test = np.flatnonzero(np.isin(test_y, GROUP_B))
    if bench.quick:
        test = ad.per_class_sample(test_y, GROUP_B, [100], seed=0)[0]
    path = ad.write_image_splits(
        bench.bench_data / f"fashion_fewshot/seed{seed}",
        {"case": "fashion_fewshot", "seed": seed, "per_class": [40, 20], "quick": bench.quick},
        {
            "train": (train_x[train], train_y[train]),
            "val": (train_x[val], train_y[val]),
            "test": (test_x[test], test_y[test]),
        },
        names,
    )
    mnv3 = {"name": "mobilenet_v3_small", "weights": fashion_weights(bench, "fashionA_mnv3"),
            "image_size": 32}  # fmt: skip
    resnet8 = {"name": "resnet8", "weights": fashion_weights(bench, "fashionA_resnet8"),
               "image_size": 28}  # fmt: skip
    backbones = {"MNv3-S/FMNIST-A": mnv3, "ResNet8/FMNIST-A": resnet8, "Lite0/ImageNet": LITE0}
    run = image_rows(bench, "fashion_fewshot", seed, path, backbones)
    for label, backbone in (("", mnv3), (" (resnet8 28 px)", resnet8)):
        name = f"fashion_fewshot-hand_transfer{_slug(label)}-s{seed}"
        recipe = bench.hand("digits_transfer.yaml", name, seed, str(path), backbone)
        run.rows.append(Row(f"tltk digits_transfer.yaml{label}", "tltk", recipe))
        if not label:  # the example recipe as it trained before the probe start
            run.rows.append(
                Row("tltk digits_transfer.yaml, head.init: random", "tltk",
                    bench.random_head(recipe))
            )  # fmt: skip
    return run


def toy(bench: Bench, seed: int) -> CaseRun:
    """Three digit classes, 15 training and 10 val images each, a random ResNet-8 at 16 px:
    the harness end to end in seconds (the test's case)."""
    x, y, names = ad.digits()
    train, val, test = ad.per_class_sample(y, [0, 1, 2], [15, 10], seed=seed)
    path = ad.write_image_splits(
        bench.bench_data / f"toy/seed{seed}",
        {"case": "toy", "seed": seed},
        {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])},
        names,
    )
    backbone = {"name": "resnet8", "weights": "none", "image_size": 16}
    return image_rows(bench, "toy", seed, path, {"ResNet8/random": backbone})


# --------------------------------------------------------------------------- text cases


def debian_sections(bench: Bench, seed: int) -> CaseRun:
    """Debian sections with >= 100 distinct descriptions (51), a seeded sample of 10,000
    descriptions in their natural proportions, 70/10/20 stratified."""
    texts, labels = ad.read_sections(ad.text_source(bench.data_root, ad.SECTIONS_FILE))
    total = 600 if bench.quick else 10_000
    chosen = ad.proportional_sample(labels, total, seed=seed)
    parts = ad.stratified_split(np.array([labels[i] for i in chosen]), (0.1, 0.2), seed=seed)
    split_of = {int(chosen[j]): name for name, idx in parts.items() for j in idx}
    path = ad.write_texts(
        bench.bench_data / f"debian_sections/seed{seed}",
        {"case": "debian_sections", "seed": seed, "total": total, "fractions": [0.1, 0.2]},
        texts,
        labels,
        split_of,
    )
    data = {"source": "text", "path": str(path)}
    return _text_rows(bench, "debian_sections", seed, data, "classification", hand=True)


def debian_tags(bench: Bench, seed: int) -> CaseRun:
    """Debtags `works-with::` labels with >= 50 texts (17), every tagged description,
    70/10/20 at random (seeded); several labels per text."""
    texts, labels = ad.read_tags(ad.text_source(bench.data_root, ad.TAGS_FILE))
    if bench.quick:
        texts, labels = texts[::6], labels[::6]
    names = ad.random_split(len(texts), (0.1, 0.2), seed=seed)
    path = ad.write_texts(
        bench.bench_data / f"debian_tags/seed{seed}",
        {"case": "debian_tags", "seed": seed, "n": len(texts), "fractions": [0.1, 0.2]},
        texts,
        labels,
        dict(enumerate(names)),
    )
    data = {"source": "text", "path": str(path), "label_column": "labels", "multi_label": True}
    return _text_rows(bench, "debian_tags", seed, data, "multilabel", hand=False)


def _text_rows(bench: Bench, case: str, seed: int, data: dict, task: str, hand: bool) -> CaseRun:
    recipe = bench.recipe(f"{case}-minilm-s{seed}", seed, data, dict(MINILM), "text")
    run = CaseRun(task, data, [Row("TF-IDF + LR", "tfidf"), Row("probe MiniLM", "probe", recipe),
                               Row("tltk default MiniLM", "tltk", recipe)])  # fmt: skip
    if hand:
        recipe = bench.hand("text_minilm.yaml", f"{case}-hand-s{seed}", seed, data["path"])
        run.rows.append(Row("tltk text_minilm.yaml", "tltk", recipe))
        run.rows.append(
            Row("tltk text_minilm.yaml, head.init: random", "tltk", bench.random_head(recipe))
        )
    return run


CASES: dict[str, tuple[Callable[[Bench, int], CaseRun], bool]] = {
    "digits_fewshot": (digits_fewshot, True),
    "fashion_fewshot": (fashion_fewshot, True),
    "digits_full": (digits_full, False),
    "debian_sections": (debian_sections, False),
    "debian_tags": (debian_tags, False),
    "toy": (toy, True),
}
"""name -> (build(bench, seed), few-shot: run with every seed of --seeds)."""
DEFAULT_CASES = [name for name in CASES if name != "toy"]
