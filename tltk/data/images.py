"""The entry point of the data layer: a recipe's `data` section -> checked, split `LabelledData`.

    source (folder | csv | tfds) -> limit_per_class -> inspect files (corrupt, convert, hash)
    -> split what the source did not (seeded, stratified, duplicates kept together)
    -> duplicates / leakage / label conflicts -> class checks -> report

A text loader plugs in beside this one with the same signature (`tltk.tasks.load_data`
dispatches on the recipe's task) and shares the end of the road, `assemble_labelled_data`.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np

from tltk.data.cleaning import check_duplicates, default_converted_dir, inspect_split
from tltk.data.errors import DataError
from tltk.data.sources import SourceData, read_source
from tltk.data.splits import limit_per_class, split_indices, strata
from tltk.data.types import LabelledData, Split, label_name
from tltk.io import atomic_write_json, atomic_write_text
from tltk.recipe import DataConfig


def load_image_data(
    cfg: DataConfig,
    *,
    seed: int,
    multi_label: bool = False,
    regression: bool = False,
    report_path: str | Path | None = None,
) -> LabelledData:
    """Read, clean and split image data as `cfg` describes.

    Splits: `train` always; `val` / `test` when non-empty. Those the source does not define are
    carved out of train with `cfg.val_fraction` / `cfg.test_fraction`, stratified by class and
    seeded: the same files, config and `seed` give identical splits on every run and machine.
    Images that TensorFlow would misread are converted to PNG beside `report_path` (or in a
    temporary folder); the user's files are never changed. The report is stored in
    `LabelledData.report` and written to `report_path` as JSON when given.

    Raises `DataError` for a missing path, an empty class folder, a single class, a class with
    fewer than `cfg.clean.min_per_class` training examples, corrupt files under
    `clean.corrupt: error` and leakage under `clean.leakage: error`.
    """
    multi_label = multi_label or cfg.multi_label
    source = read_source(cfg, multi_label=multi_label, regression=regression)
    if not regression and len(source.class_names) < 2:
        raise DataError(
            f"{_where(source)} has a single class {source.class_names}; a classifier needs at "
            "least two (add a class folder, or use a regression/multi-label manifest)"
        )
    if source.missing and cfg.clean.corrupt == "error":
        shown = "\n  ".join(f"{m['origin']}: {m['file']}" for m in source.missing[:10])
        raise DataError(
            f"{len(source.missing)} manifest row(s) name files that do not exist:\n  {shown}\n"
            "Fix the paths, or set data.clean.corrupt: drop to skip those rows."
        )
    splits = source.splits
    if cfg.limit_per_class is not None and not regression:
        splits = {n: limit_per_class(s, cfg.limit_per_class, seed=seed) for n, s in splits.items()}

    converted_dir = default_converted_dir(report_path)
    digests, inspection = {}, {"corrupt": [], "converted": [], "modes": Counter()}
    for name in list(splits):
        splits[name], digests[name], found = inspect_split(splits[name], cfg.clean, converted_dir)
        for key, value in found.items():
            inspection[key] += value  # lists extend, the Counter of modes adds up

    extra = {"ignored_files": source.ignored, "missing_files": source.missing, **inspection}
    data = assemble_labelled_data(
        source,
        splits,
        digests,
        cfg,
        seed=seed,
        multi_label=multi_label,
        regression=regression,
        extra_report=extra,
        report_path=report_path,
    )
    for line in summary(data.report):
        print(line)
    return data


def assemble_labelled_data(
    source: SourceData,
    splits: dict[str, Split],
    digests: dict[str, np.ndarray],
    cfg: DataConfig,
    *,
    seed: int,
    multi_label: bool,
    regression: bool,
    extra_report: dict,
    report_path: str | Path | None = None,
) -> LabelledData:
    """The task-independent end of loading (images and texts alike).

    Carves the splits the source lacks out of train (stratified, seeded, exact duplicates kept
    together via `digests`, one content hash per example), applies the duplicate/leakage
    policy, checks `clean.min_per_class`, and builds the report (`extra_report` adds the
    loader's own entries), written atomically to `report_path` when given.
    """
    given = sorted(splits)
    missing = {"val": cfg.val_fraction, "test": cfg.test_fraction}
    missing = {k: v for k, v in missing.items() if k not in splits and v > 0}
    if missing:
        if "train" not in splits:
            raise DataError(f"{_where(source)}: no train split to carve {sorted(missing)} from")
        index = split_indices(
            strata(splits["train"].labels, regression=regression),
            val_fraction=missing.get("val", 0.0),
            test_fraction=missing.get("test", 0.0),
            seed=seed,
            groups=digests["train"],
        )
        pool, pool_digests = splits.pop("train"), digests.pop("train")
        for name, idx in index.items():
            if name == "train" or name in missing:
                splits[name], digests[name] = pool.subset(idx), pool_digests[idx]

    splits, duplicates = check_duplicates(splits, digests, cfg.clean, source.class_names)
    splits = {n: splits[n] for n in ("train", "val", "test") if n in splits and len(splits[n])}
    counts = {n: _counts(s, source.class_names, regression) for n, s in splits.items()}
    if not regression:
        _check_train_counts(source, counts.get("train", {}), cfg.clean.min_per_class)
    report = {
        "source": source.description,
        "classes": source.class_names,
        "counts": counts,
        "splits": {
            "given": given,
            "made": sorted(missing),
            "seed": seed,
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
        },
        "limit_per_class": cfg.limit_per_class,
        "absent_classes": {} if regression else absent_classes(counts),
        **extra_report,
        **duplicates,
    }
    if report_path is not None:
        atomic_write_json(report_path, report)
    return LabelledData(source.class_names, splits, multi_label=multi_label, report=report)


def write_split_manifest(data: LabelledData, path: str | Path) -> None:
    """RUN/splits.csv: which example went to which split, with its label (one row each).

    Columns: split, example (file path, or the text; empty for in-memory images), origin
    (the file or `file:line` it came from), label (class name; names joined by `|` for
    multi-label; the number for regression). Written atomically.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["split", "example", "origin", "label"])
    for name, split in data.splits.items():
        for i in range(len(split)):
            example = "" if split.kind == "bytes" else str(split.examples[i])
            label = label_name(split.labels[i], data.class_names)
            label = "|".join(label) if isinstance(label, list) else str(label)
            writer.writerow([name, example, split.origin(i), label])
    atomic_write_text(path, out.getvalue())


def _where(source: SourceData) -> str:
    d = source.description
    return d.get("path") or f"tfds dataset {d.get('name')}"


def _counts(split: Split, class_names: list[str], regression: bool) -> dict:
    if regression:
        return {"total": len(split)}
    labels = np.asarray(split.labels)
    per = (
        labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=len(class_names))
    )
    return {
        "total": len(split),
        "per_class": {c: int(n) for c, n in zip(class_names, per, strict=True)},
    }


def absent_classes(counts: dict) -> dict[str, list[str]]:
    """The classes with no example in val and in test (splits that exist), e.g. a class too
    small to be carved into them: their metrics cannot be measured there."""
    return {
        name: [c for c, n in counts[name]["per_class"].items() if n == 0]
        for name in ("val", "test")
        if name in counts and 0 in counts[name]["per_class"].values()
    }


def _check_train_counts(source: SourceData, train: dict, min_per_class: int) -> None:
    per_class = train.get("per_class", {c: 0 for c in source.class_names})
    few = {c: n for c, n in per_class.items() if n < min_per_class}
    if few:
        shown = ", ".join(f"{c!r} ({n})" for c, n in few.items())
        raise DataError(
            f"{_where(source)}: class(es) with fewer than {min_per_class} training example(s) "
            f"(data.clean.min_per_class): {shown}. Add examples, remove the class, or lower "
            "min_per_class."
        )


def summary(report: dict) -> list[str]:
    """A few human lines about an image data report."""
    return summary_lines(
        report,
        {
            "corrupt files dropped": len(report["corrupt"]),
            "files converted to RGB PNG": len(report["converted"]),
            "missing files": len(report["missing_files"]),
            "non-image files ignored": len(report["ignored_files"]),
        },
        what="image",
    )


def summary_lines(report: dict, problems: dict[str, int], *, what: str) -> list[str]:
    """Counts per split, then each non-zero problem count: the loader's own `problems`, then
    the duplicate, leakage and label-conflict findings every loader reports."""
    counts = ", ".join(f"{n} {c['total']}" for n, c in report["counts"].items())
    lines = [f"data: {len(report['classes'])} classes; {counts}"]
    problems = {
        **problems,
        "duplicate groups within splits": sum(map(len, report["duplicates_within"].values())),
        f"leakage pairs across splits ({report['leakage']['policy']})": len(
            report["leakage"]["pairs"]
        ),
        f"same {what} with different labels": len(report["label_conflicts"]),
    }
    lines += [f"  {n} {label}" for label, n in problems.items() if n]
    per_split = [c["per_class"] for c in report["counts"].values() if "per_class" in c]
    for split, names in report.get("absent_classes", {}).items():
        shown = ", ".join(f"{c!r} ({sum(p[c] for p in per_split)} in all)" for c in names)
        fix = f" or raise data.{split}_fraction" if split in report["splits"]["made"] else ""
        lines.append(
            f"  warning: no {split} example of {len(names)} class(es): {shown}. Their {split} "
            "metrics cannot be measured: macro averages cover the classes present and "
            f"metrics.json lists the others (absent_classes). Add examples of them{fix}."
        )
    return lines
