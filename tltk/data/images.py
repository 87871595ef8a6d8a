"""Images: a recipe's `data` section -> checked, split `LabelledData`.

    source (a reader in `tltk.data.sources`: folder | csv | tfds) -> limit_per_class
    -> inspect files (corrupt, convert, hash) -> `tltk.data.assemble`: split what the source
    did not (seeded, stratified, duplicates kept together) -> duplicates / leakage / label
    conflicts -> class checks -> report

Texts (`tltk.data.text`) read with their own readers and share the same end of the road.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tltk.data.assemble import assemble_labelled_data, inspection_note, record_digests
from tltk.data.check_cache import maybe_cache
from tltk.data.cleaning import default_converted_dir, inspect_split
from tltk.data.errors import DataError
from tltk.data.labels import label_kind_of
from tltk.data.report import summary_lines, write_split_manifest
from tltk.data.sources import read_source
from tltk.data.splits import limit_per_class
from tltk.data.types import LabelledData
from tltk.recipe import DataConfig

__all__ = ["load_image_data", "summary", "write_split_manifest"]


def load_image_data(
    cfg: DataConfig,
    *,
    seed: int,
    multi_label: bool = False,
    regression: bool = False,
    report_path: str | Path | None = None,
    min_classes: int = 2,
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
    label_kind = label_kind_of(multi_label=multi_label, regression=regression)
    source = read_source(cfg, "image", label_kind)
    if not regression and len(source.class_names) < min_classes:
        raise DataError(
            f"{source.where} has a single class {source.class_names}; a classifier needs at "
            "least two (add a class folder, or use a regression/multi-label manifest)"
        )
    read = {"ignored_files": [], "missing_files": [], "dropped": [], **source.found}
    if read["missing_files"] and cfg.clean.corrupt == "error":
        _refuse_missing(read["missing_files"])
    splits = source.splits
    if cfg.limit_per_class is not None and not regression:
        splits = {n: limit_per_class(s, cfg.limit_per_class, seed=seed) for n, s in splits.items()}

    splits, digests, inspection = _inspect(splits, cfg, source, report_path)
    extra = {**read, **inspection}
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


def _inspect(splits: dict, cfg: DataConfig, source, report_path) -> tuple[dict, dict, dict]:
    """Check the files of every split (the check cache skips unchanged ones). A streamed split
    is not decoded here: its digests come from the reader's pass over it, and its checks from
    the shard manifest (`source.checked`), or from nowhere, which the report says."""
    converted_dir = default_converted_dir(report_path)
    digests, found_all = {}, {"corrupt": [], "converted": [], "modes": Counter(), "cached": 0}
    with maybe_cache("image", cfg.clean.cache) as cache:
        for name in list(splits):
            if splits[name].streamed:
                digests[name] = record_digests(splits[name])
                continue
            splits[name], digests[name], found = inspect_split(
                splits[name], cfg.clean, converted_dir, cache
            )
            for key, value in found.items():
                found_all[key] += value  # lists extend, counts and the Counter add up
    streamed = [n for n, s in splits.items() if s.streamed]
    if streamed:
        found_all["inspection"] = inspection_note(source, streamed)
    return splits, digests, found_all


def _refuse_missing(missing: list[dict]) -> None:
    shown = "\n  ".join(f"{m['origin']}: {m['file']}" for m in missing[:10])
    raise DataError(
        f"{len(missing)} manifest row(s) name files that do not exist:\n  {shown}\n"
        "Fix the paths, or set data.clean.corrupt: drop to skip those rows."
    )


def summary(report: dict) -> list[str]:
    """A few human lines about an image data report."""
    return summary_lines(
        report,
        {
            "corrupt files dropped": len(report["corrupt"]),
            "files converted to RGB PNG": len(report["converted"]),
            "missing files": len(report["missing_files"]),
            "manifest rows dropped (missing label)": len(report["dropped"]),
            "non-image files ignored": len(report["ignored_files"]),
        },
        what="image",
    ) + cache_line(report)


def cache_line(report: dict) -> list[str]:
    """How many files' checks the check cache answered (they were not opened)."""
    cached = report.get("cached", 0)
    return (
        [f"  {cached} file checks reused from the check cache (unchanged files)"] if cached else []
    )
