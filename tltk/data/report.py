"""What the loaders print and write about the data: summary lines and RUN/splits.csv."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tltk.data.types import LabelledData, label_name
from tltk.io import atomic_write_text


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
