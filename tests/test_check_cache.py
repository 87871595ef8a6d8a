"""The check cache: a second run over unchanged files opens none of them; a changed file is
checked again; a broken cache costs time, never a run."""

from __future__ import annotations

import os
import sqlite3

import pytest
from helpers import make_image_folder
from PIL import Image

import tltk.data.cleaning as cleaning
from tltk.data import load_image_data
from tltk.data.check_cache import CACHE_ENV, CheckCache, file_key
from tltk.data.parallel import parallel_map
from tltk.recipe import DataConfig


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "checks.sqlite3"
    monkeypatch.setenv(CACHE_ENV, str(path))
    return path


@pytest.fixture
def opened(monkeypatch):
    """The files the checks read, in the order they were read."""
    seen: list[str] = []
    real = cleaning.read_bytes

    def counting(example, kind):
        seen.append(os.path.basename(str(example)))
        return real(example, kind)

    monkeypatch.setattr(cleaning, "read_bytes", counting)
    return seen


def test_a_stored_check_is_returned_only_while_the_file_is_unchanged(tmp_path, private_cache):
    file = tmp_path / "a.bin"
    file.write_bytes(b"12345")
    with CheckCache("image") as cache:
        cache.put_many([(file_key(str(file)), {"digest": "d1"})])
        assert cache.get_many([file_key(str(file))]) == {str(file): {"digest": "d1"}}
    with CheckCache("sha256") as other_kind:  # kinds do not see each other's results
        assert other_kind.get_many([file_key(str(file))]) == {}
    file.write_bytes(b"54321")  # same size, new content (and new mtime/ctime)
    os.utime(file, ns=(1, 1))
    with CheckCache("image") as cache:
        assert cache.get_many([file_key(str(file))]) == {}


def test_the_second_run_opens_no_file_and_a_changed_file_is_checked_again(
    tmp_path, private_cache, opened, capsys
):
    folder = make_image_folder(tmp_path / "images", {"a": 5, "b": 5})
    cfg = DataConfig(path=str(folder), val_fraction=0.2, test_fraction=0.0)
    first = load_image_data(cfg, seed=0)
    assert len(opened) == 10 and first.report["cached"] == 0
    opened.clear()
    second = load_image_data(cfg, seed=0)
    assert opened == [] and second.report["cached"] == 10
    assert "10 file checks reused from the check cache" in capsys.readouterr().out
    for name, split in first.splits.items():  # the same data, from the cache
        assert split.examples.tolist() == second.splits[name].examples.tolist()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "a" / "0.png")  # edited in place
    (folder / "b" / "1.png").write_bytes(b"\x89PNG truncated")  # now corrupt
    third = load_image_data(cfg, seed=0)
    assert sorted(opened) == ["0.png", "1.png"] and third.report["cached"] == 8
    assert [c["file"] for c in third.report["corrupt"]] == [str(folder / "b" / "1.png")]


def test_a_remembered_conversion_is_redone_where_its_png_is_missing(
    tmp_path, private_cache, opened
):
    folder = make_image_folder(tmp_path / "images", {"a": 3, "b": 3})
    Image.open(folder / "a" / "0.png").convert("P").save(folder / "a" / "pal.bmp")
    cfg = DataConfig(path=str(folder), val_fraction=0.0, test_fraction=0.0)
    for run in ("run1", "run2"):  # each run converts into its own folder
        opened.clear()
        data = load_image_data(cfg, seed=0, report_path=tmp_path / run / "data_report.json")
        (converted,) = data.report["converted"]
        assert converted["to"].startswith(str(tmp_path / run / "converted_images"))
        assert os.path.isfile(converted["to"])
    assert opened == ["pal.bmp"]  # the cached check said "convert": only that file reread


def test_with_the_cache_off_every_run_opens_every_file(tmp_path, private_cache, opened):
    folder = make_image_folder(tmp_path / "images", {"a": 3, "b": 3})
    cfg = DataConfig(path=str(folder), val_fraction=0.0, test_fraction=0.0, clean={"cache": False})
    load_image_data(cfg, seed=0)
    load_image_data(cfg, seed=0)
    assert len(opened) == 12 and not private_cache.exists()


def test_a_corrupt_cache_file_is_set_aside_and_rebuilt(tmp_path, private_cache, opened):
    folder = make_image_folder(tmp_path / "images", {"a": 3, "b": 3})
    private_cache.parent.mkdir(parents=True)
    private_cache.write_bytes(b"this is not a database" * 100)
    cfg = DataConfig(path=str(folder), val_fraction=0.0, test_fraction=0.0)
    with pytest.warns(UserWarning, match="not a readable cache; rebuilt it"):
        load_image_data(cfg, seed=0)
    assert private_cache.with_name("checks.sqlite3.corrupt").is_file()
    with sqlite3.connect(private_cache) as db:
        assert db.execute("SELECT count(*) FROM checks").fetchone()[0] == 6
    opened.clear()
    assert load_image_data(cfg, seed=0).report["cached"] == 6 and opened == []


def test_an_unusable_cache_location_checks_every_file_and_warns(tmp_path, monkeypatch, opened):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "checks.sqlite3"))
    folder = make_image_folder(tmp_path / "images", {"a": 2, "b": 2})
    cfg = DataConfig(path=str(folder), val_fraction=0.0, test_fraction=0.0)
    with pytest.warns(UserWarning, match="unusable, checking every file"):
        data = load_image_data(cfg, seed=0)
    assert len(opened) == 4 and sum(map(len, data.splits.values())) == 4


def test_parallel_map_keeps_the_order_of_its_items():
    squares = parallel_map(lambda x: x * x, range(50), threads=4, desc="squaring")
    assert squares == [x * x for x in range(50)]
