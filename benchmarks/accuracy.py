"""Accuracy benchmark: tltk's defaults vs classical baselines, on real data, on the same splits.

    .venv/bin/python benchmarks/accuracy.py                      # every case (see BENCHMARKS.md)
    .venv/bin/python benchmarks/accuracy.py --cases digits_fewshot,debian_tags --seeds 5
    .venv/bin/python benchmarks/accuracy.py --cases toy --quick  # the harness in seconds

Cases (benchmarks/accuracy_cases.py): digits_fewshot, fashion_fewshot, digits_full,
debian_sections, debian_tags (and `toy`, for the test). Few-shot cases run once per seed of
`--seeds` (each seed draws its own train/val sample and seeds tltk) and report mean ± std.
Each row is timed: CPU seconds of this process (user + sys, every thread) and wall seconds, for
everything the row does (tltk: data checks, training, evaluation; a probe: the feature pass
and the fits). Backbones the cases transfer from are pretrained once per benchmark run, by
tltk, and reported as `pretraining` rows with their own test accuracy.

Results: the markdown table on stdout and `WORK/accuracy.json` (every seed's numbers, the data
sizes, the command). `--work` keeps runs, pretraining and results; a benchmark run killed
part-way and started again with the same `--work` skips the rows it already has.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import accuracy_cases as cases  # noqa: E402
from benchmarks import accuracy_methods as methods  # noqa: E402
from tltk.io import atomic_write_json, atomic_write_text  # noqa: E402

COLUMNS = ("case", "method", "seeds", "accuracy", "macro-F1", "micro-F1", "CPU-s", "wall-s")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    work = args.work or Path("runs") / "accuracy" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    records_file = work / "records.jsonl"
    records = _read_records(records_file)
    bench = cases.Bench(
        work=work, data_root=args.data_root, quick=args.quick, overrides=args.overrides
    )
    bench.pretrain = lambda key: _pretrain(bench, key, records, records_file)
    if args.reuse:
        _reuse(args.reuse, bench, records, records_file)
    sizes = {}
    for name in args.cases:
        build, few_shot = cases.CASES[name]
        for seed in range(args.seeds if few_shot and not args.quick else 1):
            run = build(bench, seed)
            data = _load(bench, run)
            sizes[f"{name}/seed{seed}"] = {
                "classes": data.num_classes,
                **{s: len(split) for s, split in data.splits.items()},
            }
            for row in run.rows:
                if args.methods and not any(m in row.method for m in args.methods):
                    continue
                key = {"case": name, "method": row.method, "seed": seed}
                if not any(_same(r, key) for r in records):
                    out = timed(lambda row=row, data=data, task=run.task: _run(row, data, task))
                    _append(records, records_file, {**key, **out})
    table = summarize(records, args.cases)
    report = {
        "command": " ".join(["benchmarks/accuracy.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
        "sizes": sizes,
        "table": table,
        "records": records,
    }
    atomic_write_json(args.json or work / "accuracy.json", report)
    text = format_sizes(sizes) + "\n\n" + format_table(table)
    atomic_write_text(work / "accuracy.md", text + "\n")
    print(text)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cases",
        default=",".join(cases.DEFAULT_CASES),
        help=f"comma-separated, of {', '.join(cases.CASES)}",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds of each few-shot case")
    p.add_argument(
        "--quick", action="store_true", help="a smoke version: less data, 2 steps an epoch, 1 seed"
    )
    p.add_argument(
        "--methods",
        default="",
        help="comma-separated; run only the rows whose method contains one of these",
    )
    p.add_argument(
        "--reuse",
        type=Path,
        metavar="WORK",
        help="take the baselines, probes and pretrained backbones from an earlier benchmark's "
        "--work folder (only tltk rows train: a branch's defaults scored against the same ones)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a recipe key (YAML value) in every tltk row, e.g. train.ema=0.99: a candidate "
        "default on the same cases (give it its own --work: rows are keyed by method name)",
    )
    p.add_argument("--work", type=Path, help="runs and results (default runs/accuracy/<time>)")
    p.add_argument(
        "--data-root",
        type=Path,
        default=Path("data"),
        help="where the shared data sets are, and the cases' data is written",
    )
    p.add_argument("--json", type=Path, help="results file (default WORK/accuracy.json)")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    pairs = [item.partition("=") for item in args.overrides]
    if any(not key or not sep for key, sep, _ in pairs):
        p.error(f"--set takes KEY=VALUE, got {args.overrides}")
    args.overrides = {key: yaml.safe_load(value) for key, _, value in pairs}
    unknown = [c for c in args.cases if c not in cases.CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; known: {', '.join(cases.CASES)}")
    return args


def timed(fn) -> dict:
    """`fn()`'s result with the CPU seconds (this process, all threads) and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return {**out, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def _run(row: cases.Row, data, task: str) -> dict:
    print(f"== {row.method}", flush=True)
    if row.kind == "tltk":
        return methods.tltk_run(row.recipe, data)
    if row.kind == "probe":
        return methods.linear_probe(row.recipe, data, task)
    if row.kind == "pixels":
        return methods.pixels_lr(data, task)
    return methods.tfidf_lr(data, task)


def _load(bench: cases.Bench, run: cases.CaseRun):
    """The seed's data as tltk reads it (the default recipe's data section)."""
    from tltk import tasks
    from tltk.recipe import load_recipe

    recipe = {"name": "accuracy-data", "data": run.data}
    if run.data["source"] == "text":
        recipe["modality"] = "text"
    return tasks.load_data(load_recipe(recipe))


def _pretrain(bench: cases.Bench, key: str, records: list, records_file: Path) -> Path:
    """Train (or find, in this --work) the pretraining run `key`; record it once."""
    if key not in bench.pretrained:
        recipe = cases.pretraining_recipe(bench, key)
        out = timed(lambda: _pretraining_run(recipe))
        row = {"case": "pretraining", "method": key, "seed": 0}
        if not any(_same(r, row) for r in records):
            _append(records, records_file, {**row, **out})
        bench.pretrained[key] = Path(out["run"])
    return bench.pretrained[key]


def _pretraining_run(recipe: dict) -> dict:
    import tltk

    result = tltk.train(recipe)  # a finished run of this --work is reused as it is
    return {**methods.headline(result.metrics), "run": str(result.run_dir)}


def _reuse(source: Path, bench: cases.Bench, records: list, records_file: Path) -> None:
    """Copy `source`'s pretraining rows whose run folders are still there (their backbones
    are used as they are), its baseline rows, and its probes when every pretrained backbone was
    found (a probe of a retrained backbone would not describe the backbone tltk starts from)."""
    theirs = _read_records(source / "records.jsonl")
    if not theirs:
        raise SystemExit(f"--reuse {source}: no records.jsonl there (an accuracy.py --work)")
    pretrained = [r for r in theirs if r["case"] == "pretraining"]
    for r in pretrained:
        folder = source / "runs" / Path(r["run"]).parent.name / Path(r["run"]).name
        if folder.is_dir():
            bench.pretrained[r["method"]] = folder
            r["run"] = str(folder)
    all_found = all(r["method"] in bench.pretrained for r in pretrained)
    for r in theirs:
        method = r["method"]
        keep = (
            method in bench.pretrained
            if r["case"] == "pretraining"
            else not method.startswith("tltk") and (all_found or not method.startswith("probe"))
        )
        key = {k: r[k] for k in ("case", "method", "seed")}
        if keep and not any(_same(mine, key) for mine in records):
            _append(records, records_file, {**r, "reused_from": str(source)})


def _read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(records: list, path: Path, record: dict) -> None:
    records.append(record)
    with open(path, "a") as f:  # one line per finished row: a killed benchmark keeps them
        f.write(json.dumps(record) + "\n")


def _same(record: dict, key: dict) -> bool:
    return all(record.get(k) == v for k, v in key.items())


def summarize(records: list[dict], case_order: list[str]) -> list[dict]:
    """One row per (case, method): mean and std over seeds of each metric and time."""
    order = ["pretraining", *case_order]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r["case"] in order:
            groups.setdefault((r["case"], r["method"]), []).append(r)
    table = []
    for (case, method), rows in sorted(groups.items(), key=lambda kv: order.index(kv[0][0])):
        row: dict = {"case": case, "method": method, "seeds": len(rows)}
        for metric in (*methods.HEADLINE, "cpu_s", "wall_s"):
            values = [r[metric] for r in rows if r.get(metric) is not None]
            if values:
                row[metric] = float(np.mean(values))
                row[metric + "_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        table.append(row)
    return table


def format_table(table: list[dict]) -> str:
    """Markdown; multi-label rows give subset accuracy under accuracy."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table:
        accuracy = "subset_accuracy" if "subset_accuracy" in row else "accuracy"
        micro = _cell(row, "f1_micro") if "subset_accuracy" in row else ""
        cells = [row["case"], row["method"], str(row["seeds"]), _cell(row, accuracy)]
        cells += [_cell(row, "f1_macro"), micro, _seconds(row, "cpu_s"), _seconds(row, "wall_s")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(row: dict, metric: str) -> str:
    if metric not in row:
        return ""
    std = row.get(metric + "_std")
    return f"{row[metric]:.3f}" if std is None else f"{row[metric]:.3f} ± {std:.3f}"


def _seconds(row: dict, metric: str) -> str:
    """The mean time a seed (no spread: the machine's load moves it more than the seeds)."""
    value = row.get(metric)
    return "" if value is None else f"{value:.1f}" if value < 10 else f"{value:.0f}"


def format_sizes(sizes: dict) -> str:
    lines = ["| case/seed | classes | train | val | test |", "|---|---|---|---|---|"]
    for name, s in sizes.items():
        counts = " | ".join(str(s.get(k)) for k in ("train", "val", "test"))
        lines.append(f"| {name} | {s['classes']} | {counts} |")
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
