"""Seeded, stratified train/val/test splits and per-class sub-sampling.

Everything here is a pure function of the labels and the seed: the same labels and seed give
the same indices on every machine (numpy's PCG64 generator, classes visited in sorted order).

We allocate per stratum ourselves instead of calling sklearn's `train_test_split(stratify=...)`,
because that raises on classes with a single example and on splits smaller than the number of
classes, which is exactly the small data transfer learning is for. The allocation is the same
idea (largest remainder, like sklearn's `_approximate_mode`), and every stratum keeps at least one
example in train.
"""

from __future__ import annotations

import numpy as np

from tltk.data.errors import DataError
from tltk.data.types import Split

SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
"""Accepted split names (recipes, CSV `split` column, folder names) -> canonical name."""

SPLIT_COLUMN = "split"
"""The optional column (CSV) or key (JSONL) that assigns a row to train, val or test."""


def canonical_split(name: str, where: str) -> str:
    """`name` (any alias, any case) as train, val or test; `where` starts the error."""
    canonical = SPLIT_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise DataError(f"{where}: unknown split {name!r}; use one of train, val, test")
    return canonical


def strata(labels: np.ndarray, *, regression: bool = False, bins: int = 10) -> np.ndarray:
    """One int stratum per example.

    Multi-class: the class id. Multi-label ([N, K] multi-hot): the example's rarest positive
    label, so rare labels are spread over the splits (K for an example with no label).
    Regression: the quantile bin of the target (at most `bins` bins).
    """
    labels = np.asarray(labels)
    if regression:
        edges = np.unique(np.quantile(labels, np.linspace(0, 1, bins + 1)[1:-1]))
        return np.searchsorted(edges, labels, side="right")
    if labels.ndim == 2:
        freq = labels.sum(axis=0)
        # The frequency of each label the example has (inf where it has not); argmin = rarest.
        masked = np.where(labels > 0, freq[None, :], np.inf)
        rarest = masked.argmin(axis=1)
        return np.where(np.isinf(masked.min(axis=1)), labels.shape[1], rarest)
    return labels.astype(np.int64)


def split_indices(
    strata_ids: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Indices of train/val/test, stratified on `strata_ids`, reproducible from `seed`.

    `groups` (e.g. content hashes) keeps members of one group in the same split, so exact
    duplicates never straddle train and test because of the split itself. Each group is
    stratified by its first member's stratum. Returned indices are sorted.
    """
    strata_ids = np.asarray(strata_ids)
    n = len(strata_ids)
    if groups is None:
        group_of, first = np.arange(n), np.arange(n)
    else:
        _, first, group_of = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    unit_strata = strata_ids[first]  # one entry per group
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(unit_strata == s) for s in np.unique(unit_strata)]
    members = [m[rng.permutation(len(m))] for m in members]
    sizes = np.array([len(m) for m in members])
    capacity = sizes - 1  # every stratum keeps one unit in train
    n_test = _allocate(sizes, test_fraction, capacity, rng)
    n_val = _allocate(sizes, val_fraction, capacity - n_test, rng)
    unit_split = np.zeros(len(first), dtype=np.int8)  # 0 train, 1 val, 2 test
    for m, t, v in zip(members, n_test, n_val, strict=True):
        unit_split[m[:t]] = 2
        unit_split[m[t : t + v]] = 1
    example_split = unit_split[group_of]
    return {
        name: np.flatnonzero(example_split == code)
        for code, name in enumerate(("train", "val", "test"))
    }


def _allocate(sizes: np.ndarray, fraction: float, capacity: np.ndarray, rng) -> np.ndarray:
    """Split round(fraction * total) units over strata in proportion to their sizes."""
    if fraction <= 0 or len(sizes) == 0:
        return np.zeros(len(sizes), dtype=np.int64)
    exact = fraction * sizes
    counts = np.minimum(np.floor(exact).astype(np.int64), capacity)
    target = min(int(round(fraction * sizes.sum())), int(capacity.sum()))
    # Largest remainder first; a seeded random key breaks ties so no class is always favoured.
    order = np.lexsort((rng.random(len(sizes)), -(exact - np.floor(exact))))
    while counts.sum() < target:
        progressed = False
        for i in order:
            if counts.sum() >= target:
                break
            if counts[i] < capacity[i]:
                counts[i] += 1
                progressed = True
        if not progressed:
            break
    return counts


def limit_per_class(split: Split, limit: int, *, seed: int) -> Split:
    """Keep at most `limit` examples of each class (seeded); order of the kept ones preserved.

    Multi-label data is limited by each example's rarest label (see `strata`).
    """
    ids = strata(split.labels)
    rng = np.random.default_rng(seed)
    keep = []
    for s in np.unique(ids):
        members = np.flatnonzero(ids == s)
        if len(members) > limit:
            members = np.sort(rng.choice(members, size=limit, replace=False))
        keep.append(members)
    index = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return split.subset(index)
