"""Seeded stratified splits: proportions per class, determinism, tiny classes, groups."""

from __future__ import annotations

import numpy as np

from tltk.data.splits import limit_per_class, split_indices, strata
from tltk.data.types import Split


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def test_proportions_per_class_and_partition():
    labels = _labels([100, 50, 20])
    index = split_indices(labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    together = np.sort(np.concatenate(list(index.values())))
    np.testing.assert_array_equal(together, np.arange(len(labels)))  # a partition
    per_class = {n: np.bincount(labels[i], minlength=3).tolist() for n, i in index.items()}
    assert per_class == {"train": [70, 35, 14], "val": [10, 5, 2], "test": [20, 10, 4]}


def test_same_seed_same_split_other_seed_other_split():
    labels = _labels([30, 30])
    a = split_indices(labels, val_fraction=0.2, test_fraction=0.2, seed=7)
    b = split_indices(labels, val_fraction=0.2, test_fraction=0.2, seed=7)
    c = split_indices(labels, val_fraction=0.2, test_fraction=0.2, seed=8)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["test"], c["test"])


def test_tiny_classes_keep_one_example_in_train():
    labels = _labels([1, 2, 3, 40])
    index = split_indices(labels, val_fraction=0.3, test_fraction=0.3, seed=0)
    train = np.bincount(labels[index["train"]], minlength=4)
    assert train[:3].tolist() == [1, 1, 1]
    assert len(index["val"]) + len(index["test"]) > 0


def test_overall_size_is_kept_when_every_class_is_small():
    # 10 classes of 4: per-class rounding alone would give no val at all
    labels = _labels([4] * 10)
    index = split_indices(labels, val_fraction=0.1, test_fraction=0.1, seed=0)
    assert len(index["val"]) == 4 and len(index["test"]) == 4
    assert np.bincount(labels[index["test"]], minlength=10).max() == 1


def test_groups_stay_in_one_split():
    labels = _labels([20, 20])
    groups = np.arange(40)
    groups[[0, 1, 2, 3]] = 0  # four copies of one image
    index = split_indices(labels, val_fraction=0.25, test_fraction=0.25, seed=1, groups=groups)
    holders = [n for n, i in index.items() if np.isin([0, 1, 2, 3], i).any()]
    assert len(holders) == 1 and np.isin([0, 1, 2, 3], index[holders[0]]).all()


def test_strata_multilabel_uses_rarest_label_and_regression_bins():
    multi_hot = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 0, 1]], dtype=np.float32)
    # label frequencies 3, 1, 1 -> rarest positive label; K (3) for no label
    assert strata(multi_hot).tolist() == [1, 0, 3, 2]
    values = np.linspace(0, 1, 100)
    bins = strata(values, regression=True, bins=4)
    assert np.bincount(bins).tolist() == [25, 25, 25, 25]


def test_limit_per_class():
    split = Split(np.arange(30).astype(str), _labels([20, 10]), "path", None)
    limited = limit_per_class(split, 5, seed=0)
    assert np.bincount(limited.labels).tolist() == [5, 5]
    again = limit_per_class(split, 5, seed=0)
    assert list(limited.examples) == list(again.examples)
