"""Linear probes on the few-shot image cases beyond the benchmark's one: the backbone's input
size, the pooled output of earlier groups, and the raw pixels beside the features.

    .venv/bin/python benchmarks/probe_variants.py --work runs/accuracy/probe_variants \
        --sizes 64,32,96,128 --seeds 3
    .venv/bin/python benchmarks/probe_variants.py --case fashion_fewshot --sizes 64 --no-pixels \
        --work runs/accuracy/probe_variants

What tltk's default fine-tune starts from is the probe on the pooled output of the backbone's
last group at the recipe's image size (the benchmark's `probe Lite0/ImageNet` row). Here the
same LogisticRegression (`accuracy_methods._logreg`: C on val from the benchmark's grid, fit
on train, scored on test) is fit on other feature sets of EfficientNet-Lite0/ImageNet:
- the global-average-pooled output of each of `--groups`, per input size, through tltk's own
  input pipeline (the same resize and normalisation); beside it the val loss of tltk's own
  probe (`tltk.probe.fit_probe`) on the same features, what a rule choosing the group on val
  would compare;
- the grey pixels (the `LR pixels` row), and pixels beside a feature set: each block
  standardised, then (`balanced`) each block scaled to the same total variance, so the 64
  pixels are not outweighed by 1,280 features under one L2 penalty.
The seeds share one test split (the digits' seeds split the same 1,797 images), so each
feature set is computed once per image (keyed by its pixels: file names are per split) and
kept in WORK/features-CASE-SIZE.npz. Prints one line per (features, seed) and writes
WORK/probe_variants-CASE.json.
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

CASES = ("digits_fewshot", "fashion_fewshot")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--case", default="digits_fewshot", choices=("digits_fewshot", "fashion_fewshot")
    )
    p.add_argument("--work", type=Path, default=Path("runs/accuracy/probe_variants"))
    p.add_argument("--data-root", type=Path, default=Path("data"))
    p.add_argument("--sizes", default="32,64,96,128")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--groups", default="block4,block5,block6,block7,top", help="to probe")
    p.add_argument("--no-pixels", action="store_true", help="no pixels + features rows")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    bench = cases.Bench(work=args.work, data_root=args.data_root)
    bench.pretrain = lambda key: Path("unused")  # the MobileNet rows are not used here
    seeds = [_seed_data(bench, args.case, s) for s in range(args.seeds)]
    groups = args.groups.split(",")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        cpu = time.process_time()
        feats = _features(args.work / f"features-{args.case}-{size}.npz", seeds, size)
        cpu = time.process_time() - cpu
        print(f"size {size}: features of {len(feats['index'])} images, {cpu:.1f} CPU-s")
        sets = {f"{g} {size}px": feats[g] for g in groups}
        if size == 64 and not args.no_pixels:
            sets["pixels"] = None
            for g in groups:
                sets[f"pixels + {g} {size}px"] = ("plain", feats[g])
                sets[f"pixels + {g} {size}px balanced"] = ("balanced", feats[g])
        for name, value in sets.items():
            for seed, (data, _) in enumerate(seeds):
                x = _per_split(data, feats["index"], value)
                result = accuracy_methods._logreg(
                    x, data, "classification", accuracy_methods.C_GRID,
                    scale=not isinstance(value, tuple),  # beside: each block scaled already
                )  # fmt: skip
                row = {"features": name, "seed": seed, "dims": x["train"].shape[1], **result}
                if not isinstance(value, tuple) and value is not None:
                    row["tltk_probe_val_loss"] = _tltk_probe_val_loss(x, data)
                rows.append(row)
                print(json.dumps(row))
    summary = _summary(rows)
    for line in summary:
        print(line)
    out = {"rows": rows, "summary": summary}
    (args.work / f"probe_variants-{args.case}.json").write_text(json.dumps(out, indent=1))
    return out


def _seed_data(bench, case: str, seed: int):
    run = cases.CASES[case][0](bench, seed)
    row = next(r for r in run.rows if r.method == "probe Lite0/ImageNet")
    return accuracy._load(bench, run), row.recipe


def _features(path: Path, seeds: list, size: int) -> dict[str, np.ndarray]:
    """{group: [N, C] pooled outputs, "index": [N, P] the images' pixels} over every split of
    seed 0 and the train and val splits of the others (the few-shot cases' seeds share one
    test split; the digits' seeds split the same 1,797 images)."""
    if path.is_file():
        with np.load(path) as f:
            return dict(f)
    import keras

    from tltk import tasks
    from tltk.recipe import load_recipe

    keras.backend.clear_session()
    model, names = None, []
    out: dict[str, list] = {}
    index = []
    for seed, (data, recipe) in enumerate(seeds):
        recipe = {**recipe, "backbone": {**recipe["backbone"], "image_size": size}}
        resolved = load_recipe(recipe)
        if model is None:
            task_model = tasks.build_task_model(resolved, data)
            model, names = _pooled_groups(task_model.backbone, size)
            out = {g: [] for g in names}
        for split_name, split in data.splits.items():
            if seed and split_name == "test":
                continue
            ds = tasks.pipeline(resolved, data, split_name, task_model, 64, training=False)
            for g, f in zip(names, model.predict(ds, verbose=0), strict=True):
                out[g].append(f[: len(split)])  # no padded blanks
            index += [accuracy_methods._grey_pixels(str(e)) for e in split.examples]
    arrays = {g: np.concatenate(v).astype(np.float32) for g, v in out.items()}
    arrays["index"] = np.stack(index)  # the grey pixels: an image's key across the seeds
    np.savez(path, **arrays)
    return arrays


def _pooled_groups(backbone, size: int):
    """A model: 0..255 images -> the global-average-pooled output of every group."""
    import keras

    names = list(backbone.groups)
    inner = keras.Model(backbone.model.input, [backbone.groups[g][-1].output for g in names])
    images = keras.Input((size, size, 3))
    x = images
    for layer in backbone.normalization:
        x = layer(x)
    pooled = [keras.layers.GlobalAveragePooling2D()(t) for t in inner(x)]
    return keras.Model(images, pooled), names


def _tltk_probe_val_loss(x: dict, data) -> float:
    """The val loss of tltk's own probe (`tltk.probe.fit_probe`, as a run's head start)."""
    from tltk.probe import fit_probe

    eye = np.eye(data.num_classes)
    pairs = {s: (x[s], eye[data.splits[s].labels]) for s in ("train", "val")}
    return round(fit_probe("softmax", pairs["train"], pairs["val"]).val["loss"], 4)


def _per_split(data, index: np.ndarray, value) -> dict[str, np.ndarray]:
    where = {row.tobytes(): k for k, row in enumerate(index)}
    out = {}
    for name, split in data.splits.items():
        rows = [where[_key(e)] for e in split.examples]
        pixels = np.stack([accuracy_methods._grey_pixels(str(e)) for e in split.examples])
        if value is None:
            out[name] = pixels
        elif isinstance(value, tuple):
            out[name] = (pixels, value[1][rows], value[0])
        else:
            out[name] = value[rows]
    if isinstance(out["train"], tuple):  # pixels beside features: standardise each block
        return _beside(out)
    return out


def _key(path) -> bytes:
    """An image's identity across the seeds' folders (file names are per split): its pixels;
    two identical images have the same features, so a duplicate maps to either."""
    return accuracy_methods._grey_pixels(str(path)).tobytes()


def _beside(parts: dict) -> dict[str, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    pixels, feats, mode = parts["train"]
    scalers = [StandardScaler().fit(pixels), StandardScaler().fit(feats)]
    dims = [pixels.shape[1], feats.shape[1]]
    weights = [1.0, 1.0] if mode == "plain" else [1 / np.sqrt(d) for d in dims]
    out = {}
    for name, (p, f, _) in parts.items():
        blocks = [s.transform(b) * w for s, b, w in zip(scalers, (p, f), weights, strict=True)]
        out[name] = np.concatenate(blocks, axis=1)
    return out


def _summary(rows: list[dict]) -> list[str]:
    lines = []
    for name in dict.fromkeys(r["features"] for r in rows):
        acc = np.array([r["accuracy"] for r in rows if r["features"] == name])
        cs = [r["C"] for r in rows if r["features"] == name]
        dims = next(r["dims"] for r in rows if r["features"] == name)
        by_seed = ", ".join(f"{a:.3f}" for a in acc)
        lines.append(
            f"| {name} | {dims} | {acc.mean():.3f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.3f}"
            f" | {by_seed} | {cs} |"
        )
    return lines


if __name__ == "__main__":
    main()
