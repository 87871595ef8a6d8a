"""What the loaders print and write about the data: summary lines and RUN/splits.csv."""

from __future__ import annotations

import csv
from itertools import repeat
from pathlib import Path

import numpy as np

from tltk.data.types import LabelledData, label_name
from tltk.io import atomic_text_file

SPLITS_CSV_BLOCK = 65_536
"""Rows of RUN/splits.csv formed and written at once: a block's origins and label names are
made together (a million rows in seconds), and memory holds one block, never the split."""


def write_split_manifest(data: LabelledData, path: str | Path) -> None:
    """RUN/splits.csv: which example went to which split, with its label (one row each).

    Columns: split, example (file path, or the text; empty for in-memory images and streamed
    records), origin (the file, `file:line 7` or `shard[i]` it came from), label (class name;
    names joined by `|` for multi-label; the number for regression). Written a block of rows
    at a time to a temporary file renamed into place.
    """
    with atomic_text_file(path) as f:
        writer = csv.writer(f)
        writer.writerow(["split", "example", "origin", "label"])
        for name, split in data.splits.items():
            shown = split.kind not in ("bytes", "records")
            for start in range(0, len(split), SPLITS_CSV_BLOCK):
                stop = min(start + SPLITS_CSV_BLOCK, len(split))
                examples = [str(x) for x in split.examples[start:stop]] if shown else None
                labels = label_names(split.labels[start:stop], data.class_names)
                origins = split.origins_of(start, stop)
                writer.writerows(
                    zip(repeat(name), examples or repeat(""), origins, labels, strict=False)
                )


def label_names(labels: np.ndarray, class_names: list[str]) -> list[str]:
    """splits.csv's label cells of a block of labels (see `label_name`), vectorised for
    class ids, the common case."""
    labels = np.asarray(labels)
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer) and class_names:
        return np.asarray(class_names, dtype=object)[labels].tolist()
    cells = [label_name(label, class_names) for label in labels]
    return ["|".join(c) if isinstance(c, list) else str(c) for c in cells]


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
    lines += _inspection_lines(report.get("inspection"))
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


def _inspection_lines(note: dict | None) -> list[str]:
    """What was (not) checked about streamed splits (`assemble.inspection_note`)."""
    if not note:
        return []
    if note["trusted"]:
        return [
            f"  checks trusted from the shard manifest {note['manifest']} (run once when the "
            f"shards were written, {note['written']}); not repeated"
        ]
    if "not_checked" in note:
        return [f"  warning: {', '.join(note['splits'])}: {note['not_checked']}"]
    return []


CHECK_LISTS = ("corrupt", "converted", "missing_files", "dropped", "ignored_files",
               "bad_encoding", "label_conflicts")  # fmt: skip


def summary_check_counts(report: dict) -> dict[str, int | str]:
    """How many of each finding a data report holds (the shard manifest's summary)."""
    counts: dict[str, int | str] = {k: len(report[k]) for k in CHECK_LISTS if k in report}
    counts["duplicate_groups_within"] = sum(map(len, report["duplicates_within"].values()))
    counts["leakage_pairs"] = len(report["leakage"]["pairs"])
    counts["leakage_dropped"] = report["leakage"]["dropped"]
    counts["leakage_policy"] = report["leakage"]["policy"]
    return counts
