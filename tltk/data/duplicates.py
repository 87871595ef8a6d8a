"""Exact duplicates within splits, across splits (train/test leakage) and with differing labels,
found from one content hash per example.

The hashes of all splits are grouped by numpy, so only the examples that really have a copy
reach Python: a million examples with a few duplicates cost a sort, not a million dictionary
entries. A hash is a uint64 (`compact_digests`): 8 bytes an example, where a hex string in
Python costs about 90; two different examples share one by chance with odds of about
n^2 / 2^65 (3e-8 for a million examples).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tltk.data.errors import DataError
from tltk.data.types import Split, label_name
from tltk.recipe import CleanConfig

SPLIT_PRIORITY = ("train", "val", "test")
"""Leakage keeps the copy in the earliest split of this order and drops the later ones."""


def compact_digests(hex_digests, block: int = 1 << 16) -> np.ndarray:
    """uint64 content hashes from hex digests (str or bytes, 16 hex digits or more): their
    first 64 bits. Converted with numpy a block at a time, not one Python int each."""
    hexes = np.asarray(hex_digests, dtype="S16")  # the first 16 hex digits of each
    out = np.zeros(len(hexes), np.uint64)
    for start in range(0, len(hexes), block):
        chars = hexes[start : start + block].view(np.uint8).reshape(-1, 16) | 0x20  # lower case
        nibbles = np.where(chars >= ord("a"), chars - (ord("a") - 10), chars - ord("0"))
        part = np.zeros(len(chars), np.uint64)
        for column in range(16):
            part = (part << np.uint64(4)) | nibbles[:, column].astype(np.uint64)
        out[start : start + len(chars)] = part
    return out


def check_duplicates(
    splits: dict[str, Split],
    digests: dict[str, np.ndarray],
    policy: CleanConfig,
    class_names: list[str] | None = None,
) -> tuple[dict[str, Split], dict]:
    """Report exact duplicates within splits, across splits (leakage) and with differing labels;
    apply `policy.leakage` (report / drop later copies / error)."""
    within, leakage, conflicts, drop = _find_duplicates(splits, digests, class_names)
    if leakage and policy.leakage == "error":
        shown = "\n  ".join(f"{p['kept']} == {p['copy']}" for p in leakage[:10])
        more = f"\n  ... and {len(leakage) - 10} more" if len(leakage) > 10 else ""
        raise DataError(
            f"{len(leakage)} exact duplicate(s) across splits (train/test leakage):\n"
            f"  {shown}{more}\nRemove the copies, or set data.clean.leakage: drop (drops them "
            "from val/test) or report."
        )
    if policy.leakage == "drop":
        for name, idx in drop.items():
            keep = np.setdiff1d(np.arange(len(splits[name])), idx)
            splits = {**splits, name: splits[name].subset(keep)}
    report = {
        "duplicates_within": within,
        "leakage": {
            "policy": policy.leakage,
            "pairs": leakage,
            "dropped": sum(map(len, drop.values())) if policy.leakage == "drop" else 0,
        },
        "label_conflicts": conflicts,
    }
    return splits, report


def duplicate_places(
    splits: dict[str, Split], digests: dict[str, np.ndarray]
) -> list[list[tuple[str, int]]]:
    """Each group of equal examples (2 or more) as (split, index) places, in train, val, test
    order then by index; groups ordered by their first place."""
    names = _ordered(splits)
    parts = [np.asarray(digests[n]) for n in names]
    if not parts or not sum(map(len, parts)):
        return []
    hashes = np.concatenate(parts)
    # A sort finds the values that repeat; only the (few) examples holding one are grouped.
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    (copies,) = np.nonzero(np.isin(hashes, repeated))  # positions with a copy, in order
    group = np.searchsorted(repeated, hashes[copies])
    starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    split_of = np.searchsorted(starts, copies, side="right") - 1
    places: dict[int, list[tuple[str, int]]] = {}
    for pos, g, k in zip(copies.tolist(), group.tolist(), split_of.tolist(), strict=True):
        places.setdefault(g, []).append((names[k], pos - int(starts[k])))
    return list(places.values())


def _find_duplicates(
    splits: dict[str, Split], digests: dict[str, np.ndarray], class_names: list[str] | None
) -> tuple[dict, list[dict], list[dict], dict[str, list[int]]]:
    """Groups of equal examples within each split, leakage pairs (the first copy, in train, val,
    test order, is kept), label conflicts, and the indices of the later copies per split."""
    within: dict[str, list[list[str]]] = defaultdict(list)
    leakage, conflicts = [], []
    drop: dict[str, list[int]] = defaultdict(list)
    for places in duplicate_places(splits, digests):
        by_split: dict[str, list[int]] = defaultdict(list)
        for name, i in places:
            by_split[name].append(i)
        for name, idx in by_split.items():
            if len(idx) > 1:
                within[name].append([splits[name].origin(i) for i in idx])
        first_name, first_i = places[0]
        kept = splits[first_name].origin(first_i)
        for name, i in places:
            if name != first_name:
                pair = {"kept": kept, "copy": splits[name].origin(i)}
                leakage.append({**pair, "splits": f"{first_name}/{name}"})
                drop[name].append(i)
        labels = [label_name(splits[n].labels[i], class_names) for n, i in places]
        if len({str(x) for x in labels}) > 1:
            conflicts.append({"files": [splits[n].origin(i) for n, i in places], "labels": labels})
    return dict(within), leakage, conflicts, drop


def _ordered(splits: dict[str, Split]) -> list[str]:
    return sorted(splits, key=lambda s: SPLIT_PRIORITY.index(s) if s in SPLIT_PRIORITY else 99)
