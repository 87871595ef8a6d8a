"""What the loaders print and write about the data: summary lines and RUN/splits.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from tltk.data.types import LabelledData, label_name
from tltk.io import atomic_text_file


def write_split_manifest(data: LabelledData, path: str | Path) -> None:
    """RUN/splits.csv: which example went to which split, with its label (one row each).

    Columns: split, example (file path, or the text; empty for in-memory images and streamed
    records), origin (the file, `file:line` or `shard[i]` it came from), label (class name;
    names joined by `|` for multi-label; the number for regression). Written row by row to a
    temporary file renamed into place, so a million rows need no memory.
    """
    with atomic_text_file(path) as f:
        writer = csv.writer(f)
        writer.writerow(["split", "example", "origin", "label"])
        for name, split in data.splits.items():
            shown = split.kind not in ("bytes", "records")
            for i in range(len(split)):
                example = str(split.examples[i]) if shown else ""
                label = label_name(split.labels[i], data.class_names)
                label = "|".join(label) if isinstance(label, list) else str(label)
                writer.writerow([name, example, split.origin(i), label])


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
