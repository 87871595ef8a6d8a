"""A continue run's data: the new data, checked like any run's, joined with what the past run
left (its classes, its val and test splits, its replay buffer).

    new data (every check of a normal run; one class is enough) -> classes: the past run's
    first, then the new ones -> leakage: new examples equal to the past run's val/test
    examples (content hashes), under `data.clean.leakage` -> splits:
        train = new train (+ the past run's replay buffer, when rehearsing)
        val   = past val + new val        test = past test + new test (past rows first)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tltk.continual.past_run import PastRun
from tltk.continual.rehearsal import past_buffer
from tltk.data.errors import DataError
from tltk.data.types import LabelledData, Split, concat_splits, relabel
from tltk.io import atomic_write_json
from tltk.recipe import CleanConfig, Recipe


def load_continue_data(
    recipe: Recipe, *, report_path: Path | None = None, run_dir: Path | None = None
) -> LabelledData:
    """The splits of a continue run (see the module docstring); the report (also written to
    `report_path`) gets a `continual` section."""
    from tltk import tasks

    cont = recipe.continue_from
    past = PastRun.open(cont.run)
    new = tasks.modality(recipe).load_data(
        recipe.data, seed=recipe.seed, label_kind="class", min_classes=1
    )
    added = [c for c in new.class_names if c not in past.class_names]
    class_names = past.class_names + added
    relabel(new, class_names)
    old = {name: past.split(name) for name in ("val", "test")}
    if not len(old["test"]):
        raise DataError(
            f"{past.dir} has no test split: a continue run measures forgetting on it (give the "
            "past run a data.test_fraction)"
        )
    splits, leakage = _drop_leaked(new.splits, old, recipe.data.clean, class_names)
    train = [splits["train"]]
    if "rehearsal" in cont.strategy:
        train.append(past_buffer(recipe, past, run_dir or Path(report_path or ".").parent))
    joined = {
        "train": concat_splits(train),
        "val": concat_splits([old["val"], splits.get("val", old["val"].subset([]))]),
        "test": concat_splits([old["test"], splits.get("test", old["test"].subset([]))]),
    }
    report = dict(new.report)
    report["continual"] = {
        "past_run": str(past.dir),
        "old_classes": past.class_names,
        "new_classes": added,
        "train": {"new": len(splits["train"]), "replay": len(joined["train"]) - len(train[0])},
        "val": {"old": len(old["val"]), "new": len(joined["val"]) - len(old["val"])},
        "test": {"old": len(old["test"]), "new": len(joined["test"]) - len(old["test"])},
        "leakage": leakage,
    }
    if report_path is not None:
        atomic_write_json(report_path, report)
    for line in summary_lines(report["continual"]):
        print(line)
    splits = {name: split for name, split in joined.items() if len(split)}
    return LabelledData(class_names, splits, report=report)


def content_digests(split: Split) -> np.ndarray:
    """One content hash per example (as the loaders hash them: file bytes, or UTF-8 text)."""

    def digest(example) -> str:
        if split.kind == "text":
            data = str(example).encode("utf-8")
        elif split.kind == "bytes":
            data = bytes(example)
        else:
            data = Path(str(example)).read_bytes()
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    return np.array([digest(x) for x in split.examples], dtype=object)


def _drop_leaked(
    new: dict[str, Split], old: dict[str, Split], policy: CleanConfig, class_names: list[str]
) -> tuple[dict[str, Split], dict]:
    """New examples equal to the past run's val/test examples: reported, and under
    `leakage: drop` removed from the new data (the past split stays whole: it is what the
    old classes are measured on); `error` stops."""
    seen = {}
    for name, split in old.items():
        for i, d in enumerate(content_digests(split)):
            seen.setdefault(d, (name, split.origin(i), int(split.labels[i])))
    pairs, out = [], {}
    for name, split in new.items():
        leaked = []
        for i, d in enumerate(content_digests(split)):
            if d in seen:
                old_name, origin, label = seen[d]
                pairs.append({
                    "past": origin, "new": split.origin(i), "splits": f"past {old_name}/new {name}",
                    "labels": [class_names[label], class_names[int(split.labels[i])]],
                })  # fmt: skip
                leaked.append(i)
        drop = policy.leakage == "drop" and leaked
        out[name] = split.subset(np.setdiff1d(np.arange(len(split)), leaked)) if drop else split
    if pairs and policy.leakage == "error":
        shown = "\n  ".join(f"{p['past']} == {p['new']} ({p['splits']})" for p in pairs[:10])
        raise DataError(
            f"{len(pairs)} new example(s) equal examples of the past run's val/test splits "
            f"(leakage into the old classes' measurement):\n  {shown}\nRemove them from the new "
            "data, or set data.clean.leakage: drop (drops them from the new data) or report."
        )
    dropped = len(pairs) if policy.leakage == "drop" else 0
    return out, {"policy": policy.leakage, "pairs": pairs, "dropped": dropped}


def summary_lines(section: dict) -> list[str]:
    lines = [
        f"continue from {section['past_run']}: {len(section['old_classes'])} old classes, "
        f"{len(section['new_classes'])} new ({', '.join(section['new_classes']) or 'none'}); "
        f"train {section['train']['new']} new + {section['train']['replay']} replayed; "
        f"test {section['test']['old']} old + {section['test']['new']} new"
    ]
    leakage = section["leakage"]
    if leakage["pairs"]:
        lines.append(
            f"  {len(leakage['pairs'])} new example(s) equal to the past run's val/test "
            f"examples ({leakage['policy']}; {leakage['dropped']} dropped from the new data)"
        )
    return lines
