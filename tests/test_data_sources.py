"""Sources: class folders, CSV manifests, tfds (mocked, offline), offline datasets, errors."""

from __future__ import annotations

import gzip
import json
import os
import time

import numpy as np
import pytest
from helpers import make_image_folder
from PIL import Image

import tltk.net
from tltk.data import DataError, load_image_data
from tltk.data.offline import FASHION_MNIST_DIR, read_idx, write_digits, write_fashion_mnist
from tltk.recipe import DataConfig

# --------------------------------------------------------------------------- folder


def test_folder_classes_counts_and_ignored_files(tmp_path):
    root = make_image_folder(tmp_path / "images", {"dog": 5, "cat": 4, "bird": 3})
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "nested").mkdir()
    Image.new("RGB", (8, 8), 9).save(root / "dog" / "nested" / "UPPER.JPG")
    (root / "README.md").write_text("top-level file")
    (root / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped, not reported
    (root / "cat" / ".hidden.png").write_bytes(b"\0")
    cfg = DataConfig(path=str(root), val_fraction=0, test_fraction=0)
    out = load_image_data(cfg, seed=0)
    assert out.class_names == ["bird", "cat", "dog"] and out.num_classes == 3
    train = out.splits["train"]
    assert list(out.splits) == ["train"] and train.kind == "path"
    assert np.bincount(train.labels).tolist() == [3, 4, 6]
    assert str(root / "dog" / "nested" / "UPPER.JPG") in set(train.examples)
    assert sorted(out.report["ignored_files"]) == [
        str(root / "README.md"),
        str(root / "cat" / "notes.txt"),
    ]
    assert out.report["counts"]["train"]["per_class"] == {"bird": 3, "cat": 4, "dog": 6}


def test_folder_with_explicit_and_detected_splits(tmp_path):
    root = tmp_path / "data"
    make_image_folder(root / "training", {"a": 6, "b": 6}, seed=0)
    make_image_folder(root / "testing", {"a": 2, "b": 3}, seed=1)
    cfg = DataConfig(path=str(root), splits={"train": "training", "test": "testing"})
    out = load_image_data(cfg, seed=0)
    # test given; val (10% of 12, rounded) carved from train, stratified
    assert {n: len(s) for n, s in out.splits.items()} == {"train": 11, "val": 1, "test": 5}
    assert out.report["splits"]["given"] == ["test", "train"]
    assert out.report["splits"]["made"] == ["val"]

    os.rename(root / "training", root / "train")
    os.rename(root / "testing", root / "test")
    detected = load_image_data(DataConfig(path=str(root), val_fraction=0), seed=0)
    assert {n: len(s) for n, s in detected.splits.items()} == {"train": 12, "test": 5}
    assert detected.class_names == ["a", "b"]


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_data(DataConfig(path=str(tmp_path / "nowhere")), seed=0)
    root = make_image_folder(tmp_path / "one", {"only": 4})
    with pytest.raises(DataError, match="single class"):
        load_image_data(DataConfig(path=str(root)), seed=0)
    root = make_image_folder(tmp_path / "empty", {"a": 4, "b": 4})
    (root / "ghost").mkdir()
    (root / "ghost" / "x.txt").write_text("")
    with pytest.raises(DataError, match=r"ghost contains no images"):
        load_image_data(DataConfig(path=str(root)), seed=0)
    root = make_image_folder(tmp_path / "few", {"a": 8, "b": 2})
    cfg = DataConfig(path=str(root), val_fraction=0, test_fraction=0, clean={"min_per_class": 3})
    with pytest.raises(DataError, match=r"fewer than 3 training.*'b' \(2\)"):
        load_image_data(cfg, seed=0)


def test_limit_per_class_is_seeded(tmp_path):
    root = make_image_folder(tmp_path / "images", {"a": 10, "b": 3})
    cfg = DataConfig(path=str(root), limit_per_class=4, val_fraction=0, test_fraction=0)
    first = load_image_data(cfg, seed=5).splits["train"]
    assert np.bincount(first.labels).tolist() == [4, 3]
    again = load_image_data(cfg, seed=5).splits["train"]
    assert list(again.examples) == list(first.examples)


# --------------------------------------------------------------------------- csv


def _manifest(tmp_path, rows: list[str], header: str = "path,label") -> str:
    make_image_folder(tmp_path / "img", {"cat": 4, "dog": 4})
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_csv_multiclass_reports_missing_file_with_line(tmp_path):
    rows = [f"img/cat/{i}.png,cat" for i in range(4)] + [f"img/dog/{i}.png,dog" for i in range(4)]
    rows.insert(2, "img/cat/gone.png,cat")  # line 4 of the file (header is line 1)
    rows.append(f"{tmp_path}/img/dog/0.png,dog")  # absolute paths work too (and duplicate)
    cfg = DataConfig(source="csv", path=_manifest(tmp_path, rows), val_fraction=0, test_fraction=0)
    out = load_image_data(cfg, seed=0)
    assert out.class_names == ["cat", "dog"]
    assert len(out.splits["train"]) == 9
    assert out.report["missing_files"] == [
        {"origin": f"{tmp_path}/labels.csv:line 4", "file": str(tmp_path / "img/cat/gone.png")}
    ]
    strict = DataConfig.model_validate({**cfg.model_dump(), "clean": {"corrupt": "error"}})
    with pytest.raises(DataError, match="labels.csv:line 4"):
        load_image_data(strict, seed=0)


def test_csv_paths_outside_the_manifest_folder_are_refused_unless_allowed(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    make_image_folder(elsewhere, {"cat": 2, "dog": 2}, seed=1)
    rows = [f"img/cat/{i}.png,cat" for i in range(4)] + [f"img/dog/{i}.png,dog" for i in range(4)]
    rows += [
        "img/../img/cat/0.png,cat",  # `..` that stays inside: fine
        f"{data}/img/dog/1.png,dog",  # an absolute path inside: fine
        "img/alias.png,cat",  # a symlink to a file inside: fine
        "../elsewhere/cat/0.png,cat",  # line 13
        f"{elsewhere}/dog/0.png,dog",  # line 14
        "img/link.png,cat",  # line 15: a symlink to a file elsewhere
        "img/linked_dir/1.png,dog",  # line 16: inside a symlinked folder elsewhere
    ]
    manifest = _manifest(data, rows)
    (data / "img" / "alias.png").symlink_to(data / "img" / "cat" / "1.png")
    (data / "img" / "link.png").symlink_to(elsewhere / "cat" / "1.png")
    (data / "img" / "linked_dir").symlink_to(elsewhere / "dog")
    cfg = DataConfig(source="csv", path=manifest, val_fraction=0, test_fraction=0)
    with pytest.raises(DataError) as e:
        load_image_data(cfg, seed=0)
    message = str(e.value)
    assert message.startswith(f"4 manifest row(s) name images outside the manifest's folder {data}")
    for line, cell, real in [
        (13, "../elsewhere/cat/0.png", elsewhere / "cat/0.png"),
        (14, f"{elsewhere}/dog/0.png", elsewhere / "dog/0.png"),
        (15, "img/link.png", elsewhere / "cat/1.png"),
        (16, "img/linked_dir/1.png", elsewhere / "dog/1.png"),
    ]:
        assert f"{manifest}:line {line}: {cell!r} is {real}\n" in message + "\n"
    assert "line 12" not in message and "set data.allow_outside_paths: true" in message

    allowed = DataConfig.model_validate({**cfg.model_dump(), "allow_outside_paths": True})
    out = load_image_data(allowed, seed=0)
    assert len(out.splits["train"]) == 15 and not out.report["missing_files"]
    # A manifest reached through a symlinked folder judges paths by the real folder.
    (tmp_path / "data_link").symlink_to(data)
    inside = _manifest(tmp_path / "data_link", rows[:11])
    assert (
        len(load_image_data(cfg.model_copy(update={"path": inside}), seed=0).splits["train"]) == 11
    )


def test_csv_multilabel_delimiter_json_and_split_column(tmp_path):
    rows = [
        "img/cat/0.png,cat|indoor,train",
        'img/cat/1.png,"[""cat"", ""outdoor""]",train',
        "img/cat/2.png,cat,train",
        "img/dog/0.png,dog|outdoor,train",
        "img/dog/1.png,dog,train",
        "img/dog/2.png,dog|indoor,val",
        "img/cat/3.png,cat|outdoor,test",
    ]
    path = _manifest(tmp_path, rows, header="path,label,split")
    cfg = DataConfig(source="csv", path=path, label_delimiter="|", multi_label=True)
    out = load_image_data(cfg, seed=0)
    assert out.multi_label and out.class_names == ["cat", "dog", "indoor", "outdoor"]
    assert {n: len(s) for n, s in out.splits.items()} == {"train": 5, "val": 1, "test": 1}
    train = out.splits["train"]
    assert train.labels.dtype == np.float32 and train.labels.shape == (5, 4)
    assert train.labels.tolist()[:2] == [[1, 0, 1, 0], [1, 0, 0, 1]]
    assert out.report["counts"]["train"]["per_class"] == {
        "cat": 3,
        "dog": 2,
        "indoor": 1,
        "outdoor": 2,
    }


def test_csv_bad_cells_name_the_line(tmp_path):
    path = _manifest(
        tmp_path,
        ["img/cat/0.png,cat,train", "img/cat/1.png,cat,holdout"],
        header="path,label,split",
    )
    with pytest.raises(DataError, match=r"line 3: unknown split 'holdout'"):
        load_image_data(DataConfig(source="csv", path=path), seed=0)
    path = _manifest(tmp_path, ["img/cat/0.png,cat"], header="file,label")
    with pytest.raises(DataError, match=r"no column 'path' \(data.image_column\)"):
        load_image_data(DataConfig(source="csv", path=path), seed=0)


def test_csv_regression_targets(tmp_path):
    rows = [f"img/cat/{i}.png,{i * 0.5}" for i in range(4)] + [
        f"img/dog/{i}.png,{10 + i}" for i in range(4)
    ]
    cfg = DataConfig(
        source="csv", path=_manifest(tmp_path, rows), val_fraction=0.25, test_fraction=0
    )
    out = load_image_data(cfg, seed=0, regression=True)
    assert out.class_names == ["label"]
    assert out.splits["train"].labels.dtype == np.float32
    assert sorted(np.concatenate([s.labels for s in out.splits.values()]).tolist()) == [
        0.0,
        0.5,
        1.0,
        1.5,
        10.0,
        11.0,
        12.0,
        13.0,
    ]


# --------------------------------------------------------------------------- tfds


def test_tfds_mock_reads_encoded_bytes_and_splits(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tltk.net, "reachable", lambda *a, **k: True)
    cfg = DataConfig(source="tfds", name="tf_flowers", data_dir=str(tmp_path))
    with tfds.testing.mock_data(num_examples=40):
        out = load_image_data(cfg, seed=0)
        train = out.splits["train"]
        # Streamed: the split holds record ids and labels; the images stay in tfds's stream
        # (read again on demand, here inside the mock).
        assert train.kind == "records" and train.examples.dtype == np.int64
        assert train.raw_examples(1)[0][:4] == b"\x89PNG"
    assert out.class_names == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    assert {n: len(s) for n, s in out.splits.items()} == {"train": 32, "val": 4, "test": 4}
    assert train.origin(0).startswith("tfds:tf_flowers/train[")


def test_tfds_not_prepared_fails_fast_with_the_fix(tmp_path, monkeypatch):
    cfg = DataConfig(source="tfds", name="mnist", data_dir=str(tmp_path), download=False)
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as e:
        load_image_data(cfg, seed=0)
    assert time.perf_counter() - start < 60  # not the ~205 s network hang; no speed target
    message = str(e.value)
    assert "'mnist'" in message and str(tmp_path) in message and "data.source: folder" in message
    # download: true without network fails on the probe, not after minutes of retries
    monkeypatch.setattr(tltk.net, "reachable", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="unreachable"):
        load_image_data(cfg.model_copy(update={"download": True}), seed=0)


# --------------------------------------------------------------------------- offline data


def test_write_digits_real_images(tmp_path):
    root = write_digits(tmp_path / "digits")
    files = sorted(root.glob("*/*.png"))
    assert len(files) == 1797 and sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        str(d) for d in range(10)
    ]
    assert Image.open(files[0]).size == (8, 8)
    assert json.loads((root / ".tltk-dataset.json").read_text())["counts"] == {"all": 1797}
    assert write_digits(tmp_path / "digits") == root  # complete: returns at once


def test_read_idx_parses_a_tiny_file(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in images.shape)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "x-idx3-ubyte.gz"), images)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x00")
    with pytest.raises(DataError, match="holds 1 bytes"):
        read_idx(tmp_path / "bad")


def test_fashion_mnist_missing_package_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        write_fashion_mnist(tmp_path / "fm", source_dir=tmp_path / "nothing")


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR), reason="dataset-fashion-mnist missing")
def test_fashion_mnist_subset_loads_as_a_presplit_folder(tmp_path):
    root = write_fashion_mnist(tmp_path / "fm", per_class=3, seed=0)
    assert len(list(root.glob("train/*/*.png"))) == 30
    assert len(list(root.glob("test/*/*.png"))) == 30
    out = load_image_data(DataConfig(path=str(root), val_fraction=0), seed=0)
    assert out.class_names[:3] == ["ankle_boot", "bag", "coat"] and out.num_classes == 10
    assert {n: len(s) for n, s in out.splits.items()} == {"train": 30, "test": 30}
    with pytest.raises(DataError, match="already holds"):
        write_fashion_mnist(tmp_path / "fm", per_class=4)


# --------------------------------------------------------------------------- small classes


def test_classes_missing_from_val_or_test_are_reported_and_warned(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", {"a": 10, "b": 10, "rare": 1, "two": 2})
    cfg = DataConfig(path=str(root), val_fraction=0.2, test_fraction=0.2)
    out = load_image_data(cfg, seed=0)
    counts = out.report["counts"]
    assert counts["train"]["per_class"]["rare"] == 1
    # `two` lands in val or test (every class keeps one example in train), never in both.
    missing = {s: [c for c, n in counts[s]["per_class"].items() if n == 0] for s in ("val", "test")}
    assert out.report["absent_classes"] == missing
    assert "rare" in missing["val"] and "rare" in missing["test"]
    assert sorted(missing["val"] + missing["test"]) == ["rare", "rare", "two"]
    printed = capsys.readouterr().out
    for split, names in missing.items():
        shown = ", ".join(f"'{c}' ({1 if c == 'rare' else 2} in all)" for c in names)
        assert (
            f"warning: no {split} example of {len(names)} class(es): {shown}. Their {split} "
            "metrics cannot be measured" in printed
        )
        assert f"Add examples of them or raise data.{split}_fraction." in printed

    # A given test folder without a class: nothing to raise, only examples to add.
    make_image_folder(tmp_path / "split" / "train", {"a": 4, "b": 4})
    make_image_folder(tmp_path / "split" / "test", {"a": 2}, seed=1)
    given = load_image_data(DataConfig(path=str(tmp_path / "split"), val_fraction=0), seed=0)
    assert given.report["absent_classes"] == {"test": ["b"]}
    assert "class(es): 'b' (4 in all)" in capsys.readouterr().out
    full = load_image_data(DataConfig(path=str(root), val_fraction=0, test_fraction=0), seed=0)
    assert full.report["absent_classes"] == {}


# --------------------------------------------------------------------------- extensions


def test_training_and_predict_read_the_same_image_files(tmp_path):
    from tltk.data.sources import read_source
    from tltk.predict import image_files

    root = make_image_folder(tmp_path / "images", {"a": 1, "b": 1})
    Image.new("RGB", (8, 8)).save(root / "a" / "extra.webp")
    (root / "b" / "UPPER.PNG").write_bytes((root / "b" / "0.png").read_bytes())
    (root / "b" / "notes.txt").write_text("not an image")
    source = read_source(DataConfig(source="folder", path=str(root)), "image", "class")
    trained = sorted(source.splits["train"].examples.tolist())
    assert [p.rsplit("/", 1)[1] for p in trained] == ["0.png", "extra.webp", "0.png", "UPPER.PNG"]
    assert sorted(map(str, image_files([root]))) == trained
    assert source.found["ignored_files"] == [str(root / "b" / "notes.txt")]
