"""Cleaning: corrupt files, image modes TensorFlow misreads, duplicates, leakage, conflicts."""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
from helpers import make_image_folder
from PIL import Image

from tltk.data import DataError, build_pipeline, load_image_data
from tltk.modalities.image import ImagePreprocessor
from tltk.recipe import DataConfig

COLOR = (200, 100, 50)


def _solid(mode_from_rgb: str | None = None) -> Image.Image:
    image = Image.new("RGB", (16, 16), COLOR)
    return image.convert(mode_from_rgb) if mode_from_rgb else image


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _jpeg_bytes() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    return _save(Image.fromarray(pixels), "JPEG")


# name -> (file name, bytes, what cleaning does, expected pixel through the pipeline)
CASES = {
    "gray": ("gray.png", lambda: _save(Image.new("L", (16, 16), 77), "PNG"), "native", (77,) * 3),
    "gray_alpha": (
        "la.png",
        lambda: _save(Image.new("LA", (16, 16), (77, 0)), "PNG"),
        "native",
        (77,) * 3,
    ),
    "rgba": (
        "rgba.png",
        lambda: _save(Image.new("RGBA", (16, 16), (*COLOR, 0)), "PNG"),
        "native",
        COLOR,
    ),
    "palette_png_transparency": (
        "p.png",
        lambda: _save(_solid("P"), "PNG", transparency=0),
        "native",
        None,  # palette quantisation changes the colour; checked against Pillow below
    ),
    "one_bit": ("bw.png", lambda: _save(Image.new("1", (16, 16), 1), "PNG"), "native", (255,) * 3),
    "cmyk_jpeg": ("cmyk.jpg", lambda: _save(_solid("CMYK"), "JPEG", quality=100), "native", COLOR),
    "gray16_png": (
        "g16.png",
        lambda: _save(Image.fromarray(np.full((16, 16), 65535, np.uint16)), "PNG"),
        "native",
        (255,) * 3,
    ),
    "palette_bmp": ("p.bmp", lambda: _save(_solid("P"), "BMP"), "converted", None),
    "one_bit_bmp": (
        "bw.bmp",
        lambda: _save(Image.new("1", (16, 16), 1), "BMP"),
        "converted",
        (255,) * 3,
    ),
    "tiff_named_png": ("tiff.png", lambda: _save(_solid(), "TIFF"), "converted", COLOR),
    "truncated_jpeg": ("cut.jpg", lambda: _jpeg_bytes()[:300], "corrupt", None),
    "random_bytes_png": ("noise.png", lambda: np.random.default_rng(1).bytes(500), "corrupt", None),
}


def _dataset_with(tmp_path, file_name: str, data: bytes):
    root = make_image_folder(tmp_path / "images", {"a": 4, "b": 4})
    (root / "a" / file_name).write_bytes(data)
    return root, str(root / "a" / file_name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_image_kind_is_counted_converted_or_dropped(tmp_path, case):
    file_name, make, action, pixel = CASES[case]
    data = make()
    root, target = _dataset_with(tmp_path, file_name, data)
    cfg = DataConfig(path=str(root), val_fraction=0, test_fraction=0)
    report_path = tmp_path / "run" / "data_report.json"
    out = load_image_data(cfg, seed=0, report_path=report_path)
    report = json.loads(report_path.read_text())
    train = out.splits["train"]
    converted = {c["file"]: c for c in report["converted"]}
    corrupt = {c["file"] for c in report["corrupt"]}
    if action == "corrupt":
        assert corrupt == {target} and len(train) == 8
        assert target not in set(train.origins_of(0, len(train)))
        return
    assert not corrupt and len(train) == 9
    i = train.origins_of(0, len(train)).index(target)
    if action == "converted":
        to = converted[target]["to"]
        assert to.startswith(str(tmp_path / "run" / "converted_images"))
        assert train.examples[i] == to and Image.open(to).mode == "RGB"
    else:
        assert target not in converted and train.examples[i] == target
    assert (tmp_path / "images" / "a" / file_name).read_bytes() == data  # user's file untouched

    ds = build_pipeline(
        train.subset(np.array([i])),
        num_classes=2,
        preprocessor=ImagePreprocessor(16),
        batch_size=1,
        training=False,
        seed=0,
    )
    got = next(iter(ds))[0].numpy()[0]
    if pixel is None:  # palette colours (dithered): whatever Pillow says each pixel is
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    else:
        expected = np.broadcast_to(pixel, got.shape)
    np.testing.assert_allclose(got, expected, atol=3)


def test_modes_are_counted_in_the_report(tmp_path):
    root, _ = _dataset_with(tmp_path, "gray.png", CASES["gray"][1]())
    (root / "b" / "cmyk.jpg").write_bytes(CASES["cmyk_jpeg"][1]())
    out = load_image_data(DataConfig(path=str(root), val_fraction=0, test_fraction=0), seed=0)
    assert out.report["modes"] == {"PNG/RGB": 8, "PNG/L": 1, "JPEG/CMYK": 1}


def test_corrupt_error_policy_lists_the_files(tmp_path):
    root, target = _dataset_with(tmp_path, "cut.jpg", _jpeg_bytes()[:300])
    cfg = DataConfig(path=str(root), clean={"corrupt": "error"})
    with pytest.raises(DataError, match="1 undecodable") as e:
        load_image_data(cfg, seed=0)
    assert target in str(e.value) and "corrupt: drop" in str(e.value)


def _presplit_with_copy(tmp_path):
    """train/{a,b} and test/{a,b}; test/a/copy.png is a byte copy of train/a/0.png and
    test/b/conflict.png a copy of train/a/1.png filed under another class."""
    root = tmp_path / "data"
    make_image_folder(root / "train", {"a": 5, "b": 5}, seed=0)
    make_image_folder(root / "test", {"a": 3, "b": 3}, seed=1)
    shutil.copy(root / "train/a/0.png", root / "test/a/copy.png")
    shutil.copy(root / "train/a/1.png", root / "test/b/conflict.png")
    shutil.copy(root / "train/b/0.png", root / "train/b/dup.png")
    return root


@pytest.mark.parametrize("policy", ["report", "drop", "error"])
def test_leakage_policies(tmp_path, policy):
    root = _presplit_with_copy(tmp_path)
    cfg = DataConfig(path=str(root), val_fraction=0, clean={"leakage": policy})
    if policy == "error":
        with pytest.raises(DataError, match="2 exact duplicate") as e:
            load_image_data(cfg, seed=0)
        assert str(root / "test/a/copy.png") in str(e.value)
        return
    out = load_image_data(cfg, seed=0)
    leakage = out.report["leakage"]
    pairs = {(p["kept"], p["copy"]) for p in leakage["pairs"]}
    assert pairs == {
        (str(root / "train/a/0.png"), str(root / "test/a/copy.png")),
        (str(root / "train/a/1.png"), str(root / "test/b/conflict.png")),
    }
    assert len(out.splits["train"]) == 11
    assert len(out.splits["test"]) == (6 if policy == "drop" else 8)
    assert leakage["dropped"] == (2 if policy == "drop" else 0)
    assert out.report["duplicates_within"] == {
        "train": [[str(root / "train/b/0.png"), str(root / "train/b/dup.png")]]
    }
    assert out.report["label_conflicts"] == [
        {
            "files": [str(root / "train/a/1.png"), str(root / "test/b/conflict.png")],
            "labels": ["a", "b"],
        }
    ]


def test_split_made_here_keeps_duplicates_together(tmp_path):
    root = make_image_folder(tmp_path / "images", {"a": 20, "b": 20})
    for i in range(5):  # five byte copies of one image: one group, one split
        shutil.copy(root / "a/0.png", root / f"a/copy{i}.png")
    out = load_image_data(DataConfig(path=str(root), val_fraction=0.2, test_fraction=0.2), seed=3)
    assert out.report["leakage"]["pairs"] == []
    holders = [
        n for n, s in out.splits.items() if any("copy" in o for o in s.origins_of(0, len(s)))
    ]
    assert len(holders) == 1


def test_why_conversion_is_needed_tensorflow_misreads_these():
    """The measured facts behind `tf_decode_problem`; if TF learns these, conversion can go."""
    import tensorflow as tf

    palette_bmp = _save(_solid("P"), "BMP")
    decoded = tf.io.decode_image(palette_bmp, channels=3, expand_animations=False).numpy()
    truth = np.asarray(Image.open(io.BytesIO(palette_bmp)).convert("RGB"))
    assert np.abs(decoded.astype(int) - truth).max() > 100  # palette index read as gray
    for data in (_save(Image.new("1", (16, 16), 1), "BMP"), _save(_solid(), "TIFF")):
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.io.decode_image(data, channels=3, expand_animations=False)


def test_checks_in_small_blocks_find_what_one_block_finds(tmp_path, monkeypatch):
    import tltk.data.cleaning as cleaning

    root = make_image_folder(tmp_path / "images", {"a": 5, "b": 5})
    (root / "a" / "cut.jpg").write_bytes(_jpeg_bytes()[:300])
    (root / "b" / "p.bmp").write_bytes(_save(_solid("P"), "BMP"))
    (root / "b" / "copy.png").write_bytes(
        (root / "a" / sorted(os.listdir(root / "a"))[0]).read_bytes()
    )
    cfg = DataConfig(path=str(root), val_fraction=0, test_fraction=0)
    cfg.clean.cache = False
    whole = load_image_data(cfg, seed=0, report_path=tmp_path / "one" / "report.json")
    monkeypatch.setattr(cleaning, "CHECK_BLOCK", 3)  # 13 files: blocks of 3, 3, 3, 3, 1
    blocks = load_image_data(cfg, seed=0, report_path=tmp_path / "two" / "report.json")
    train, again = whole.splits["train"], blocks.splits["train"]
    assert len(train) == 12 and again.origins_of(0, 12) == train.origins_of(0, 12)
    assert [c["file"] for c in blocks.report["corrupt"]] == [str(root / "a" / "cut.jpg")]
    assert [c["file"] for c in blocks.report["converted"]] == [str(root / "b" / "p.bmp")]
    assert blocks.report["modes"] == whole.report["modes"]
    assert len(blocks.report["duplicates_within"]["train"]) == 1  # copy.png, by its hash


def test_the_end_of_the_checks_copies_nothing_per_file_of_a_clean_split():
    """Dropping corrupt files used np.setdiff1d over 0..N-1 even when there were none: a
    sorted copy and the digests copied, 25 bytes a file at its peak (25 MB for a million
    files), freed memory the allocator kept. A clean split now allocates nothing per file;
    a few corrupt ones cost a mask and the kept copies."""
    import tracemalloc

    from tltk.data import cleaning
    from tltk.data.types import Split
    from tltk.recipe import CleanConfig

    n = 250_000
    split = Split(np.full(n, "a.png", dtype=object), np.arange(n) % 3)
    for errors in ({}, {5: "bad", 17: "bad", n - 1: "bad"}):
        found = cleaning._Found(n)
        found.digests[:] = np.arange(n, dtype=np.uint64) * 7
        found.errors = dict(errors)
        tracemalloc.start()
        try:
            cleaned, digests, report = cleaning._apply(split, found, CleanConfig(corrupt="drop"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        kept = np.delete(np.arange(n), sorted(errors))
        assert len(cleaned) == len(digests) == n - len(errors)
        np.testing.assert_array_equal(digests, kept.astype(np.uint64) * 7)
        np.testing.assert_array_equal(cleaned.labels, kept % 3)
        assert len(report["corrupt"]) == len(errors)
        # clean: < 1 B a file; corrupt: a 1 B mask + 8 B index + 3 kept 8 B copies = 33 B
        assert peak < (n if not errors else 40 * n), peak
