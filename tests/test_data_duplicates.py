"""Exact duplicates from compact content hashes (tltk/data/duplicates.py)."""

from __future__ import annotations

import hashlib

import numpy as np

from tltk.data.duplicates import compact_digests, duplicate_places
from tltk.data.shard_manifest import load_digests
from tltk.data.types import Split


def _hex(i: int) -> str:
    return hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()


def test_compact_digests_are_the_first_64_bits_of_each_hex_digest():
    hexes = [_hex(i) for i in range(500)]
    got = compact_digests(hexes)
    assert got.dtype == np.uint64
    assert got.tolist() == [int(h[:16], 16) for h in hexes]
    assert compact_digests(np.array(hexes, "S32")).tolist() == got.tolist()  # as shards hold them
    assert compact_digests([h.upper() for h in hexes]).tolist() == got.tolist()
    assert len(compact_digests([])) == 0


def test_shard_digests_load_a_block_at_a_time(tmp_path):
    hexes = np.array([_hex(i) for i in range(1001)], "S32")
    np.save(tmp_path / "train.digests.npy", hexes, allow_pickle=False)
    got = load_digests(tmp_path / "train.digests.npy", block=64)
    assert got.tolist() == compact_digests(hexes).tolist()


def test_duplicate_places_group_copies_within_and_across_splits():
    train = compact_digests([_hex(i) for i in (1, 2, 3, 2, 4)])
    test = compact_digests([_hex(i) for i in (5, 3, 6)])
    splits = {n: Split(np.arange(len(d)), np.zeros(len(d), np.int64), "path")
              for n, d in (("train", train), ("test", test))}  # fmt: skip
    places = duplicate_places(splits, {"train": train, "test": test})
    assert places == [[("train", 1), ("train", 3)], [("train", 2), ("test", 1)]]
