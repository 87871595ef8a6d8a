"""One label parser for every source: the rules, and the image and text readers agreeing."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_image_folder

from tltk.data.errors import DataError
from tltk.data.labels import class_names_of, encode_labels, label_kind_of, parse_label
from tltk.data.sources import read_source
from tltk.recipe import CleanConfig, DataConfig

CFG = DataConfig(label_delimiter="|")


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (" cat ", "class", "cat"),
        (7, "class", "7"),
        ("", "class", None),
        ("   ", "classes", None),
        (None, "value", None),
        ("dog| cat|dog||", "classes", ["cat", "dog"]),
        ('["dog", " cat", "", "dog"]', "classes", ["cat", "dog"]),
        (["b", "a", "a"], "classes", ["a", "b"]),
        ("[]", "classes", []),
        ("cat", "classes", ["cat"]),
        (" 2.5 ", "value", 2.5),
        (3, "value", 3.0),
    ],
)
def test_parse_label_rules(value, kind, expected):
    assert parse_label(value, "f.csv:line 2", CFG, kind) == expected


def test_parse_label_errors_name_the_origin_and_the_fix():
    with pytest.raises(
        DataError, match=r"^f\.csv:line 2: label 'x' is not a number \(regression\)"
    ):
        parse_label("x", "f.csv:line 2", CFG, "value")
    with pytest.raises(DataError, match=r"f\.csv:line 3: label \['a', 'b'\] is a list; set data"):
        parse_label(["a", "b"], "f.csv:line 3", CFG, "class")
    with pytest.raises(DataError, match=r"f\.csv:line 4: label '\[\"a\"' is not a valid JSON list"):
        parse_label('["a"', "f.csv:line 4", CFG, "classes")
    with pytest.raises(DataError, match=r"labels of kind 'boxes' cannot be read"):
        parse_label("a", "f.csv:line 5", CFG, "boxes")


def test_without_a_delimiter_a_multi_label_cell_is_one_name():
    assert parse_label("a|b", "o", DataConfig(), "classes") == ["a|b"]


def test_label_kind_of_the_loader_flags():
    assert label_kind_of(multi_label=False, regression=False) == "class"
    assert label_kind_of(multi_label=True, regression=False) == "classes"
    assert label_kind_of(multi_label=False, regression=True) == "value"


def test_encode_labels_per_kind():
    names = class_names_of([["b"], ["a", "c"], []], CFG, "classes")
    assert names == ["a", "b", "c"]
    multi = encode_labels([["b"], ["a", "c"], []], names, "classes")
    assert multi.dtype == np.float32 and multi.tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]
    ids = encode_labels(["b", "a", "b"], class_names_of(["b", "a", "b"], CFG, "class"), "class")
    assert ids.dtype == np.int64 and ids.tolist() == [1, 0, 1]
    assert class_names_of([1.0, 2.0], CFG, "value") == ["label"]
    assert encode_labels([1.0, 2.5], ["label"], "value").tolist() == [1.0, 2.5]


CELLS = ["cat|indoor", "indoor|cat|cat", '["dog"]', "", "[]"]


def _manifest_and_texts(tmp_path):
    """The same label cells in an image manifest and in a text file."""
    make_image_folder(tmp_path / "img", {"x": len(CELLS)})
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label\n"
        + "".join(
            f'img/x/{i}.png,"{c.replace(chr(34), 2 * chr(34))}"\n' for i, c in enumerate(CELLS)
        )
    )
    texts = tmp_path / "t.csv"
    texts.write_text(
        "text,label\n"
        + "".join(f'text {i},"{c.replace(chr(34), 2 * chr(34))}"\n' for i, c in enumerate(CELLS))
    )
    return manifest, texts


def test_image_manifest_and_text_files_read_labels_alike(tmp_path):
    manifest, texts = _manifest_and_texts(tmp_path)
    images = read_source(
        DataConfig(source="csv", path=str(manifest), label_delimiter="|"), "image", "classes"
    )
    text = read_source(
        DataConfig(source="text", path=str(texts), label_delimiter="|"), "text", "classes"
    )
    assert images.class_names == text.class_names == ["cat", "dog", "indoor"]
    expected = [[1, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]]  # the empty cell is dropped
    assert (
        images.splits["train"].labels.tolist() == text.splits["train"].labels.tolist() == expected
    )
    reason = "missing label ('label')"
    assert images.found["dropped"] == [{"origin": f"{manifest}:line 5", "reason": reason}]
    assert text.found["dropped"] == [{"origin": f"{texts}:line 5", "reason": reason}]


def test_a_missing_label_stops_both_readers_under_corrupt_error(tmp_path):
    manifest, texts = _manifest_and_texts(tmp_path)
    clean = CleanConfig(corrupt="error")
    for modality, source, path in (("image", "csv", manifest), ("text", "text", texts)):
        cfg = DataConfig(source=source, path=str(path), label_delimiter="|", clean=clean)
        with pytest.raises(DataError, match=r"1 unusable row\(s\):\n  .*m?\.csv:line 5: missing"):
            read_source(cfg, modality, "classes")


def test_load_image_data_reports_and_prints_rows_without_a_label(tmp_path, capsys):
    from tltk.data import load_image_data

    manifest, _ = _manifest_and_texts(tmp_path)
    cfg = DataConfig(source="csv", path=str(manifest), label_delimiter="|", multi_label=True)
    data = load_image_data(cfg.model_copy(update={"val_fraction": 0, "test_fraction": 0}), seed=0)
    assert [d["origin"] for d in data.report["dropped"]] == [f"{manifest}:line 5"]
    assert "  1 manifest rows dropped (missing label)" in capsys.readouterr().out.splitlines()
