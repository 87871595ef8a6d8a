"""benchmarks/bench_gpu.py in its CPU smoke mode: every variant on both sources, for both tasks,
with the numbers it prints and keeps."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import keras
import pytest
from text_helpers import texts, vocabulary

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_gpu.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_mode_measures_every_variant_and_source(tmp_path, capsys):
    """The image task with every variant; the text task (its pipeline and tokenizer) in
    float32 only, since XLA compiles a BERT for 20 s of CPU."""
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "vocab.txt").write_text("\n".join(vocabulary()) + "\n")
    with open(tmp_path / "texts.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(texts(4))
    bench, common = _bench(), ["--smoke", "--steps", "2", "--warmup", "1"]
    image = bench.main([*common, "--tasks", "image", "--json", str(tmp_path / "image.json")])
    text = bench.main(
        [*common, "--tasks", "text", "--variants", "float32", "--vocab", str(tmp_path / "vocab")]
        + ["--texts", str(tmp_path / "texts.csv")]
    )
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert json.loads((tmp_path / "image.json").read_text()) == image
    printed = capsys.readouterr().out
    assert "no GPU: CPU only" in printed
    assert "image: resnet8 at 32 px, batch 8, 24 JPEG files" in printed
    assert "text: BERT 2 x 32, 16 tokens, batch 4, 12 texts" in printed
    variants = ["float32", "mixed", "mixed+xla"]
    rows = image["image"]
    assert [rows[v]["precision"] for v in variants] == ["float32"] + ["mixed_float16"] * 2
    assert [rows[v]["jit_compile"] for v in variants] == [False, False, True]
    assert set(text["text"]) == {"input alone", "input per CPU-second", "float32"}
    for rows, names in ((image["image"], variants), (text["text"], ["float32"])):
        assert rows["input alone"] > 0
        for variant in names:
            row = rows[variant]
            assert row["synthetic"] > 0 and row["real"] > 0
            assert row["real/synthetic"] == pytest.approx(row["real"] / row["synthetic"])


def test_jpeg_files_are_real_photos_at_realistic_sizes(tmp_path):
    from PIL import Image

    files = _bench().write_jpegs(tmp_path, 6)
    assert [label for _, label in files] == [0, 1, 2, 0, 1, 2]  # china, flower, grace_hopper
    for path, _ in files:
        with Image.open(path) as image:
            assert image.format == "JPEG" and 256 <= min(image.size) <= 480
