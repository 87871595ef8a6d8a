"""Replay buffers: the budget, herding and random selection, the buffer folder on disk."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import make_image_folder

from tltk.continual.replay import (
    EXAMPLES,
    buffer_info,
    herding,
    quotas,
    read_buffer,
    select,
    write_buffer,
)
from tltk.data.types import Split


def test_quotas_share_the_budget_evenly_and_never_exceed_it():
    assert quotas([10, 10, 10], 9).tolist() == [3, 3, 3]
    assert quotas([10, 10, 10], 10).sum() == 10
    # A small class gives what it cannot use to the others.
    assert quotas([2, 50, 50], 30).tolist() == [2, 14, 14]
    assert quotas([3, 4], 100).tolist() == [3, 4]  # a budget above the data keeps all of it
    assert quotas([5, 5], 0).tolist() == [0, 0]
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts, budget = rng.integers(0, 30, 6), int(rng.integers(0, 120))
        keep = quotas(counts, budget)
        assert keep.sum() == min(budget, counts.sum()) and np.all(keep <= counts)
        short = keep < counts  # classes that gave up nothing: shares within one of each other
        if short.any():
            assert np.ptp(keep[short]) <= 1 and keep[short].min() >= keep.max() - 1


def test_herding_approaches_the_class_mean_better_than_random():
    features = np.random.default_rng(0).normal(size=(200, 16)) + 3.0
    normed = features / np.linalg.norm(features, axis=1, keepdims=True)
    chosen = herding(features, 10)
    assert len(set(chosen.tolist())) == 10
    # The first pick is the example nearest the mean; the running mean tracks the class mean.
    assert chosen[0] == np.argmin(np.linalg.norm(normed - normed.mean(0), axis=1))
    error = np.linalg.norm(normed[chosen].mean(0) - normed.mean(0))
    rng = np.random.default_rng(1)
    random_errors = [
        np.linalg.norm(normed[rng.choice(200, 10, replace=False)].mean(0) - normed.mean(0))
        for _ in range(100)
    ]
    assert error < min(random_errors)
    assert len(herding(features[:3], 10)) == 3  # never more than the class has


def test_select_respects_the_budget_per_class_and_is_seeded():
    labels = np.repeat([0, 1, 2], [40, 5, 40])
    features = np.random.default_rng(0).normal(size=(len(labels), 8))
    for selection in ("herding", "random"):
        index = select(labels, 3, 31, selection, seed=3, features=features)
        assert len(index) == 31 and len(set(index.tolist())) == 31
        assert np.bincount(labels[index], minlength=3).tolist() == [13, 5, 13]
        again = select(labels, 3, 31, selection, seed=3, features=features)
        np.testing.assert_array_equal(index, again)
    other = select(labels, 3, 31, "random", seed=4)
    assert set(other.tolist()) != set(select(labels, 3, 31, "random", seed=3).tolist())
    with pytest.raises(ValueError, match="features"):
        select(labels, 3, 31, "herding", seed=3)


def test_an_image_buffer_keeps_the_bytes_and_outlives_the_data(tmp_path):
    root = make_image_folder(tmp_path / "images", {"a": 4, "b": 3})
    paths = sorted(str(p) for p in root.rglob("*.png"))
    labels = np.array([0 if "/a/" in p else 1 for p in paths])
    split = Split(np.array(paths, dtype=object), labels, "path")
    folder = write_buffer(tmp_path / "run" / "replay", split, np.array([0, 2, 5]), ["a", "b"],
                          {"budget": 3, "selection": "random"})  # fmt: skip
    originals = {p: open(p, "rb").read() for p in paths}
    for p in paths:
        os.remove(p)  # the data is gone; the buffer is not
    kept = read_buffer(folder, ["a", "b"])
    assert kept.kind == "path" and kept.labels.tolist() == [0, 0, 1]
    assert [open(p, "rb").read() for p in kept.examples] == [originals[paths[i]] for i in (0, 2, 5)]
    assert kept.origins == [f"replay:{paths[i]}" for i in (0, 2, 5)]
    info = buffer_info(folder)
    assert info["size"] == 3 and info["per_class"] == {"a": 2, "b": 1} and info["budget"] == 3
    assert sorted(os.listdir(folder)) == ["buffer.json", EXAMPLES, "manifest.csv"]
    # A buffer is written once: never replaced, no temporary left behind.
    with pytest.raises(FileExistsError):
        write_buffer(folder, split, np.array([1]), ["a", "b"], {})
    assert sorted(os.listdir(folder.parent)) == ["replay"]
    # Read into a larger class list (a later run's), the ids follow the names.
    assert read_buffer(folder, ["x", "b", "a"]).labels.tolist() == [2, 2, 1]


def test_a_text_buffer_holds_the_texts(tmp_path):
    texts = np.array(["a puzzle game", "an IMAP client, with \"quotes\"\nand a newline", "x"],
                     dtype=object)  # fmt: skip
    split = Split(texts, np.array([0, 1, 1]), "text", ["f.csv:line 2", "f.csv:line 3", "f:4"])
    folder = write_buffer(tmp_path / "replay", split, np.array([1, 0]), ["games", "mail"], {})
    kept = read_buffer(folder, ["games", "mail"])
    assert kept.kind == "text" and kept.examples.tolist() == [texts[1], texts[0]]
    assert kept.labels.tolist() == [1, 0] and not (folder / EXAMPLES).exists()
    # A buffer kept from a buffer names the first origin once.
    again = write_buffer(tmp_path / "replay2", kept, np.array([0]), ["games", "mail"], {})
    assert read_buffer(again, ["games", "mail"]).origins == ["replay:f.csv:line 3"]
