"""The end of loading shared by every modality: carve the missing splits, apply the duplicate
and leakage policy, check the classes, build the report.

    SourceData (from a reader in `tltk.data.sources`) + inspected splits and content hashes
    -> split what the source did not (seeded, stratified, duplicates kept together)
    -> duplicates / leakage / label conflicts -> class checks -> report
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tltk.data.duplicates import check_duplicates
from tltk.data.errors import DataError
from tltk.data.splits import split_indices, strata
from tltk.data.types import LabelledData, SourceData, Split
from tltk.io import atomic_write_json
from tltk.recipe import DataConfig


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
            raise DataError(f"{source.where}: no train split to carve {sorted(missing)} from")
        splits, digests = _carve(splits, digests, missing, seed=seed, regression=regression)
    splits, duplicates = check_duplicates(splits, digests, cfg.clean, source.class_names)
    splits = {n: splits[n] for n in ("train", "val", "test") if n in splits and len(splits[n])}
    counts = {n: split_counts(s.labels, source.class_names, regression) for n, s in splits.items()}
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


def record_digests(split: Split) -> np.ndarray:
    """The content hashes of a streamed split's records (from its reader's pass, or the shard
    manifest), aligned with the split."""
    if split.records.digests is None:
        raise ValueError("a streamed split needs its records' digests for the duplicate checks")
    digests = np.asarray(split.records.digests)
    return digests if split.whole else digests[split.examples]  # a whole split: no copy


def inspection_note(source: SourceData, streamed: list[str], *, decoded: bool = False) -> dict:
    """What the report says about checks of streamed splits: trusted from the shard manifest
    that ran them once (`source.checked`), or, for images streamed from elsewhere, not run
    (they are decoded only in training); `decoded`: the reader's pass checked everything."""
    if source.checked is not None:
        return {"trusted": True, "splits": streamed, **source.checked}
    if decoded:
        return {"trusted": False, "splits": streamed, "checked_by": "the reader's pass"}
    return {
        "trusted": False,
        "splits": streamed,
        "not_checked": "streamed images are decoded in training only, not before it; "
        "`tltk data shard` checks every image once and writes shards whose manifest runs trust",
    }


def _carve(
    splits: dict[str, Split],
    digests: dict[str, np.ndarray],
    fractions: dict[str, float],
    *,
    seed: int,
    regression: bool,
) -> tuple[dict[str, Split], dict[str, np.ndarray]]:
    """Carve the splits in `fractions` (val, test) out of train; the other splits stay."""
    index = split_indices(
        strata(splits["train"].labels, regression=regression),
        val_fraction=fractions.get("val", 0.0),
        test_fraction=fractions.get("test", 0.0),
        seed=seed,
        groups=digests["train"],
    )
    splits, digests = dict(splits), dict(digests)
    pool, pool_digests = splits.pop("train"), digests.pop("train")
    for name, idx in index.items():
        if name == "train" or name in fractions:
            splits[name], digests[name] = pool.subset(idx), pool_digests[idx]
    return splits, digests


def split_counts(labels: np.ndarray, class_names: list[str], regression: bool) -> dict:
    """The report's counts of one split: its total and (classes) its examples per class."""
    if regression:
        return {"total": len(labels)}
    labels = np.asarray(labels)
    per = (
        labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=len(class_names))
    )
    return {
        "total": len(labels),
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
            f"{source.where}: class(es) with fewer than {min_per_class} training example(s) "
            f"(data.clean.min_per_class): {shown}. Add examples, remove the class, or lower "
            "min_per_class."
        )
