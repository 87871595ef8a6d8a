"""Text data: CSV / TSV / JSONL reading, labels, splits and cleaning with located messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from text_helpers import texts, write_csv

from tltk.data.errors import DataError
from tltk.data.text import load_text_data
from tltk.recipe import CleanConfig, DataConfig


def load(path, **kw):
    clean = kw.pop("clean", {})
    multi = kw.pop("multi_label", False)
    report = kw.pop("report_path", None)
    cfg = DataConfig(source="text", path=str(path), clean=CleanConfig(**clean), **kw)
    return load_text_data(cfg, seed=0, multi_label=multi, report_path=report)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "tsv_as_txt", "jsonl"])
def test_reads_each_format_and_splits_seeded(tmp_path, fmt):
    rows = texts(10)
    if fmt == "jsonl":
        path = tmp_path / "t.jsonl"
        path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    else:
        name = {"csv": "t.csv", "tsv": "t.tsv", "tsv_as_txt": "t.txt"}[fmt]
        path = write_csv(tmp_path / name, rows, delimiter="," if fmt == "csv" else "\t")
    data = load(path, val_fraction=0.2, test_fraction=0.2)
    assert data.class_names == ["games", "science", "sound"]
    assert {n: len(s) for n, s in data.splits.items()} == {"train": 18, "val": 6, "test": 6}
    assert all(s.kind == "text" for s in data.splits.values())
    assert np.bincount(data.splits["test"].labels).tolist() == [2, 2, 2]  # stratified
    again = load(path, val_fraction=0.2, test_fraction=0.2)
    assert list(again.splits["test"].examples) == list(data.splits["test"].examples)


def test_explicit_split_files_and_custom_columns(tmp_path):
    rows = texts(4)
    write_csv(tmp_path / "train.csv", rows, header=("body", "topic"))
    write_csv(tmp_path / "test.csv", texts(2, seed=9), header=("body", "topic"))
    cfg = DataConfig(
        source="text",
        path=str(tmp_path),
        splits={"train": "train.csv", "test": "test.csv"},
        text_column="body",
        label_column="topic",
        val_fraction=0.0,
    )
    data = load_text_data(cfg, seed=0)
    assert sorted(data.splits) == ["test", "train"]
    assert data.splits["test"].origins[0] == f"{tmp_path / 'test.csv'}:line 2"


def test_missing_column_names_file_and_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", texts(2), header=("sentence", "label"))
    with pytest.raises(DataError, match=r"t\.csv: no column 'text' \(data.text_column\).*sentence"):
        load(path)


def test_multi_label_json_list_and_delimited(tmp_path):
    rows = [("play music", json.dumps(["games", "sound"])), ("plot data", '["science"]')]
    rows += [("mix audio", "sound|science"), ("chess", "games")] * 3
    path = write_csv(tmp_path / "m.csv", rows)
    data = load(path, multi_label=True, label_delimiter="|", val_fraction=0, test_fraction=0)
    assert data.class_names == ["games", "science", "sound"]
    train = data.splits["train"]
    first = train.labels[list(train.examples).index("play music")]
    assert first.tolist() == [1.0, 0.0, 1.0]
    assert train.labels.shape == (len(train), 3)


def test_cleaning_drops_and_reports_with_file_and_line(tmp_path):
    rows = texts(6) + [("   ", "games"), ("a text without label", "")]
    path = write_csv(tmp_path / "t.csv", rows)
    with open(path, "ab") as f:  # Latin-1 bytes in a UTF-8 file
        f.write(b"caf\xe9 game play,games\n")
    report_path = tmp_path / "report.json"
    data = load(path, report_path=report_path, val_fraction=0, test_fraction=0)
    report = json.loads(report_path.read_text())
    assert report["dropped"] == [
        {"origin": f"{path}:line 20", "reason": "empty text"},
        {"origin": f"{path}:line 21", "reason": "missing label ('label')"},
    ]
    assert report["bad_encoding"] == [f"{path}:line 22"]
    assert "caf\ufffd game play" in list(data.splits["train"].examples)
    with pytest.raises(DataError, match=r"t\.csv:line 20: empty text"):
        load(path, clean={"corrupt": "error"})


def test_invalid_json_line_is_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"text": t, "label": y}) for t, y in texts(4)]
    path.write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n")
    data = load(path, val_fraction=0, test_fraction=0)
    assert data.report["dropped"][0]["origin"] == f"{path}:line 4"
    assert data.report["dropped"][0]["reason"].startswith("not valid JSON")


@pytest.mark.parametrize("policy", ["report", "drop", "error"])
def test_duplicates_across_split_files_follow_the_leakage_policy(tmp_path, policy):
    train = texts(4)
    write_csv(tmp_path / "train.csv", train)
    write_csv(tmp_path / "test.csv", [train[0], ("science data plot", "science")])
    cfg = DataConfig(
        source="text",
        path=str(tmp_path),
        splits={"train": "train.csv", "test": "test.csv"},
        val_fraction=0.0,
        clean=CleanConfig(leakage=policy),
    )
    if policy == "error":
        with pytest.raises(DataError, match=r"train\.csv:line 2 == .*test\.csv:line 2"):
            load_text_data(cfg, seed=0)
        return
    data = load_text_data(cfg, seed=0)
    assert len(data.report["leakage"]["pairs"]) == 1
    assert len(data.splits["test"]) == (1 if policy == "drop" else 2)


def test_duplicates_within_one_file_stay_in_one_split(tmp_path):
    rows = texts(10) + [texts(10)[0]] * 3
    data = load(write_csv(tmp_path / "t.csv", rows), val_fraction=0.2, test_fraction=0.2)
    assert data.report["leakage"]["pairs"] == []
    groups = [g for found in data.report["duplicates_within"].values() for g in found]
    assert len(groups) == 1 and len(groups[0]) == 4


def test_tfds_without_download_fails_at_once(tmp_path):
    cfg = DataConfig(source="tfds", name="imdb_reviews", data_dir=str(tmp_path), download=False)
    with pytest.raises(RuntimeError, match="not prepared .* data.download is false"):
        load_text_data(cfg, seed=0)
