"""`tltk data shard` and the `tfrecord` source: checks once per data set, shards a run trusts."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import make_image_folder, tiny_recipe
from PIL import Image

import tltk.data.cleaning as cleaning
from tltk.cli import main
from tltk.data import DataError, load_image_data
from tltk.data.records import example_proto
from tltk.data.shard_manifest import MANIFEST, sha256_file
from tltk.data.shards import shard_recipe, write_shards
from tltk.data.text import load_text_data
from tltk.recipe import DataConfig

SPLIT = ["data.val_fraction=0.2", "data.test_fraction=0.2"]


def shard_folder(tmp_path, classes=None, **kw):
    folder = make_image_folder(tmp_path / "images", classes or {"a": 10, "b": 8, "c": 6})
    return write_shards(shard_recipe(str(folder), overrides=SPLIT), tmp_path / "shards", **kw)


def test_shards_hold_the_checked_splits_with_a_manifest(tmp_path):
    folder = make_image_folder(tmp_path / "images", {"a": 10, "b": 8, "c": 6})
    (folder / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    Image.open(folder / "b" / "0.png").save(folder / "b" / "0.bmp")  # a BMP: kept, 24-bit
    Image.open(folder / "a" / "0.png").convert("P").save(folder / "a" / "pal.bmp")  # converted
    recipe = shard_recipe(str(folder), overrides=[*SPLIT, "seed=5"])
    out = write_shards(recipe, tmp_path / "shards", shard_examples=4)
    manifest = json.loads((out / MANIFEST).read_text())
    reference = load_image_data(recipe.data, seed=5)  # the same checks and splits, in memory
    assert manifest["class_names"] == ["a", "b", "c"] and manifest["seed"] == 5
    assert manifest["label_kind"] == "class" and manifest["example_kind"] == "bytes"
    for name, split in manifest["splits"].items():
        assert split["count"] == len(reference.splits[name])
        assert split["per_class"] == reference.report["counts"][name]["per_class"]
        assert [s["count"] for s in split["shards"]][:-1] == [4] * (len(split["shards"]) - 1)
        for entry in [*split["shards"], split["labels"], split["digests"]]:
            assert sha256_file(out / entry["file"]) == entry["sha256"]
    found = manifest["checks"]["found"]
    assert found["corrupt"] == 1 and found["converted"] == 1
    report = json.loads((out / "data_report.json").read_text())
    assert report["corrupt"][0]["file"].endswith("broken.png")
    assert not (out / "converted_images").exists()  # the converted PNG is inside a shard
    # Each shard mixes the classes (a seeded order, not class by class).
    train = np.load(out / "train.labels.npy")
    assert len(set(train[:4].tolist())) > 1 and sorted(train) == sorted(reference_train(reference))
    with pytest.raises(FileExistsError):  # an existing folder is never replaced
        write_shards(recipe, out)


def reference_train(data):
    return data.splits["train"].labels.tolist()


def test_a_run_on_shards_trusts_the_manifest_and_opens_no_image(tmp_path, monkeypatch, capsys):
    out = shard_folder(tmp_path, shard_examples=5)
    opened = []
    monkeypatch.setattr(cleaning, "read_bytes", lambda *a: opened.append(a) or b"")
    data = load_image_data(DataConfig(source="tfrecord", path=str(out)), seed=0)
    assert opened == []  # nothing inspected again
    assert {n: s.kind for n, s in data.splits.items()} == dict.fromkeys(
        ("train", "val", "test"), "records"
    )
    note = data.report["inspection"]
    assert note["trusted"] is True and note["manifest"] == str(out / MANIFEST)
    assert "checks trusted from the shard manifest" in capsys.readouterr().out
    assert data.report["source"]["made_from"]["type"] == "folder"
    manifest = json.loads((out / MANIFEST).read_text())
    assert data.report["counts"]["train"]["per_class"] == manifest["splits"]["train"]["per_class"]


def test_changed_shards_are_refused_naming_the_file(tmp_path):
    out = shard_folder(tmp_path)
    shard = sorted(out.glob("val-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # same size, other content
    shard.write_bytes(bytes(data))
    cfg = DataConfig(source="tfrecord", path=str(out))
    with pytest.raises(DataError, match=f"{shard.name}.*sha256"):
        load_image_data(cfg, seed=0)
    load_image_data(cfg.model_copy(update={"verify_shards": "size"}), seed=0)  # sizes only
    shard.write_bytes(bytes(data[:-1]))
    with pytest.raises(DataError, match="bytes, the manifest says"):
        load_image_data(cfg.model_copy(update={"verify_shards": "size"}), seed=0)


def test_shards_of_the_wrong_kind_or_head_are_refused(tmp_path):
    out = shard_folder(tmp_path)
    with pytest.raises(DataError, match="shards of image data; set modality: image"):
        load_text_data(DataConfig(source="tfrecord", path=str(out)), seed=0)
    with pytest.raises(DataError, match="'class' labels but .* 'value'"):
        load_image_data(DataConfig(source="tfrecord", path=str(out)), seed=0, regression=True)
    multi = load_image_data(DataConfig(source="tfrecord", path=str(out)), seed=0, multi_label=True)
    assert multi.splits["train"].labels.shape[1] == 3  # class ids read as one-hot


def test_text_files_shard_and_train_data_come_back_equal(tmp_path):
    rows = ["text,label"] + [f"word{i} and more words {i % 4},{'ab'[i % 2]}" for i in range(40)]
    rows.append('"",a')  # an empty text: dropped and reported when sharding
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n")
    recipe = shard_recipe(str(tmp_path / "texts.csv"), modality="text", overrides=SPLIT)
    out = write_shards(recipe, tmp_path / "shards", shard_examples=8)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["example_kind"] == "text" and manifest["checks"]["found"]["dropped"] == 1
    data = load_text_data(DataConfig(source="tfrecord", path=str(out)), seed=0)
    direct = load_text_data(recipe.data, seed=recipe.seed)
    for name, split in data.splits.items():
        texts = sorted(split.raw_examples(len(split)))
        assert texts == sorted(direct.splits[name].examples.tolist())


def test_foreign_tfrecords_are_read_by_their_feature_names(tmp_path):
    path = tmp_path / "mine.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(12):
            png = tf.io.encode_png(tf.fill([5, 5, 3], tf.constant(i * 10, tf.uint8))).numpy()
            label = [b"cat", b"dog", b"owl"][i % 3] if i != 7 else None
            encoded = tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))
            feature = {"image/encoded": encoded}
            feature["image/class"] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[label] if label else [])
            )
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    cfg = DataConfig(
        source="tfrecord", path=str(path), example_feature="image/encoded",
        label_column="image/class", val_fraction=0.25, test_fraction=0.0,
    )  # fmt: skip
    data = load_image_data(cfg, seed=0)
    assert data.class_names == ["cat", "dog", "owl"]
    assert data.report["dropped"] == [
        {"origin": "mine.tfrecord[7]", "reason": "missing label ('image/class')"}
    ]
    assert sum(len(s) for s in data.splits.values()) == 11
    assert "not_checked" in data.report["inspection"]  # images decoded in training only
    with pytest.raises(DataError, match=r"no feature 'image' \(data.example_feature\)"):
        load_image_data(cfg.model_copy(update={"example_feature": None}), seed=0)


def test_tfrecord_ids_as_labels_and_duplicates_found_from_fingerprints(tmp_path):
    path = tmp_path / "ids.tfrecord"
    png = [tf.io.encode_png(tf.fill([4, 4, 3], tf.constant(v, tf.uint8))).numpy() for v in range(6)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(12):  # each image twice, with the same label
            writer.write(example_proto(png[i % 6], i % 2 if i % 6 != 0 else 0, "class", "x"))
    data = load_image_data(DataConfig(source="tfrecord", path=str(path), test_fraction=0.0),
                           seed=0)  # fmt: skip
    assert data.class_names == ["0", "1"]
    assert sum(map(len, data.report["duplicates_within"].values())) == 6
    assert data.report["leakage"]["pairs"] == []  # copies kept together when carving val


def test_streamed_images_are_checked_once_when_sharded(tmp_path):
    path = tmp_path / "mine.tfrecord"
    bmp = io.BytesIO()
    Image.new("RGB", (6, 6), (200, 10, 10)).convert("P").save(bmp, "BMP")  # TF misreads it
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(12):
            png = tf.io.encode_png(tf.fill([4, 4, 3], tf.constant(i * 9, tf.uint8))).numpy()
            image = {3: b"\x89PNG not really", 5: bmp.getvalue()}.get(i, png)
            writer.write(example_proto(image, i % 2, "class", f"item{i}"))
    data = ["data.source=tfrecord", f"data.path={path}", "data.test_fraction=0.0"]
    recipe = shard_recipe(str(path), overrides=[*data, "data.val_fraction=0.0"])
    out = write_shards(recipe, tmp_path / "shards")
    report = json.loads((out / "data_report.json").read_text())
    assert report["corrupt"][0]["file"] == "mine.tfrecord[3]"
    assert [c["file"] for c in report["converted"]] == ["mine.tfrecord[5]"]
    assert report["counts"]["train"]["per_class"] == {"0": 6, "1": 5}  # item3 left out
    assert report["inspection"]["checked_by"].startswith("tltk data shard")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["splits"]["train"]["count"] == 11
    assert manifest["checks"]["found"]["corrupt"] == 1
    shards = load_image_data(DataConfig(source="tfrecord", path=str(out)), seed=0)
    images = shards.splits["train"].raw_examples(11)
    assert all(x[:4] == b"\x89PNG" for x in images)  # the BMP became a PNG in the shard
    strict = [*data, "data.val_fraction=0.0", "data.clean.corrupt=error"]
    with pytest.raises(DataError, match=r"mine.tfrecord\[3\]"):
        write_shards(shard_recipe(str(path), overrides=strict), tmp_path / "strict")
    assert not (tmp_path / "strict").exists()


def test_a_tfds_split_streams_into_shards_that_match_it(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    import tltk.net

    monkeypatch.setattr(tltk.net, "reachable", lambda *a, **k: True)
    overrides = [f"data.data_dir={tmp_path / 'tfds'}", *SPLIT]
    recipe = shard_recipe("tfds:tf_flowers", overrides=overrides)
    with tfds.testing.mock_data(num_examples=30):
        direct = load_image_data(recipe.data, seed=recipe.seed)
        out = write_shards(recipe, tmp_path / "shards", shard_examples=7)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["source"]["type"] == "tfds" and manifest["class_names"] == direct.class_names
    data = load_image_data(DataConfig(source="tfrecord", path=str(out)), seed=0)  # no mock
    for name, split in direct.splits.items():
        shards = data.splits[name]
        assert manifest["splits"][name]["count"] == len(split) == len(shards)
        assert shards.labels.tolist() == split.labels.tolist()  # a stream keeps its order
        assert shards.raw_examples(2)[1][:4] == b"\x89PNG"


def test_a_folder_of_tfrecord_files_is_scanned_in_file_order(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    gray = 0
    for k, n in enumerate([5, 0, 3, 4]):  # an empty file among them
        with tf.io.TFRecordWriter(str(folder / f"part-{k}.tfrecord")) as writer:
            for _ in range(n):
                png = tf.io.encode_png(tf.fill([4, 4, 3], tf.constant(gray, tf.uint8))).numpy()
                writer.write(example_proto(png, gray % 2, "class", f"g{gray}"))
                gray += 1
    cfg = DataConfig(source="tfrecord", path=str(folder), val_fraction=0.0, test_fraction=0.0)
    train = load_image_data(cfg, seed=0).splits["train"]
    assert train.records.counts == [5, 0, 3, 4] and train.origin(6) == "part-2.tfrecord[1]"
    assert train.labels.tolist() == [g % 2 for g in range(12)]
    pixels = [tf.io.decode_png(x)[0, 0, 0].numpy() for x in train.raw_examples(12)]
    assert pixels == list(range(12))


def test_cli_shards_a_folder_and_tltk_trains_on_the_shards(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "images", {"a": 12, "b": 12})
    out = tmp_path / "shards"
    code = main(["data", "shard", str(folder), str(out), "--shard-examples", "6", "--set",
                 "data.val_fraction=0.25", "--set", "data.test_fraction=0.25"])  # fmt: skip
    assert code == 0 and "Wrote 24 examples in 4 shards" in capsys.readouterr().out
    assert main(["data", "shard", str(folder), str(out)]) == 2  # exists: refused, exit 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "shard", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 2
    assert "not a recipe, folder, file or tfds:NAME" in capsys.readouterr().err


@pytest.mark.slow
def test_a_recipe_trains_evaluates_and_exports_from_shards(tmp_path):
    import tltk

    out = shard_folder(tmp_path, {"a": 16, "b": 16}, shard_examples=6)
    recipe = tiny_recipe(tmp_path, out, epochs=(1, 0))
    recipe["backbone"].update(name="resnet8", image_size=16)  # the images' size; the cheapest
    recipe["data"] = {"source": "tfrecord", "path": str(out), "cache": "none"}
    # What is checked is training from shards; the export's parity check (a fresh TensorFlow
    # process) does not depend on where the training images came from and is tested elsewhere.
    recipe["export"]["parity"] = False
    result = tltk.train(recipe)
    assert result.metrics["split"] == "test" and 0.0 <= result.metrics["accuracy"] <= 1.0
    rows = (result.run_dir / "splits.csv").read_text().splitlines()
    assert len(rows) == 1 + 32 and ",test-00000-of-" in "".join(rows)
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert report["inspection"]["trusted"] is True
    assert result.export_path is not None and (result.export_path / "saved_model.pb").is_file()
