"""The `tltk` command line end to end on a tiny generated folder: train, evaluate, export,
predict, check, backbones, data; errors exit 2 with the message on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import make_image_folder, tiny_recipe

from tltk.cli import main

CLASSES = ["a", "b", "c"]


def write_recipe(tmp_path: Path) -> Path:
    data = make_image_folder(tmp_path / "images", {c: 10 for c in CLASSES}, size=32)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tmp_path, data)))
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    tltk = Path(sys.executable).parent / "tltk"
    return subprocess.run([str(tltk), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_check_prints_the_resolved_recipe_without_importing_tensorflow(tmp_path):
    recipe = write_recipe(tmp_path)
    code = (
        "import sys; from tltk.cli import main; "
        f"rc = main(['check', {str(recipe)!r}, '--set', 'train.batch_size=64']); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; "
        "sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["train"]["batch_size"] == 64
    assert resolved["phases"][1]["train"] == "top:1"
    assert resolved["head"]["type"] == "classification"  # defaults filled in


def test_recipe_errors_exit_2_naming_key_line_and_fix(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    text = recipe.read_text().replace("batch_size:", "bacth_size:")
    recipe.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "bacth_size" in s)
    assert main(["check", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"train.bacth_size (line {line}): unknown key; did you mean 'batch_size'?" in err
    assert main(["train", str(recipe), "--set", "train.batch_size=big"]) == 2
    assert "train.batch_size" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert main(["train", str(recipe), "--set", f"data.path={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err
    assert "data.path" in err and "nowhere" in err and "does not exist" in err


@pytest.mark.slow
def test_train_evaluate_export_predict(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert main(["train", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "classification on test" in out and "Parity" in out
    run = (tmp_path / "runs" / "tiny" / "latest").resolve()
    state = json.loads((run / "state.json").read_text())
    assert state["finished"] and Path(state["export"]) == tmp_path / "saved_models/tiny/1"
    # A second `train` of the finished recipe starts a new run; the first stays as it was.
    assert main(["train", str(recipe), "--set", "export.enabled=false"]) == 0
    capsys.readouterr()
    assert len([p for p in (tmp_path / "runs" / "tiny").iterdir() if not p.is_symlink()]) == 2

    assert main(["evaluate", str(run), "--split", "val"]) == 0
    assert "classification on val" in capsys.readouterr().out
    val = json.loads((run / "eval-val" / "metrics.json").read_text())
    test = json.loads((run / "metrics.json").read_text())
    assert val["n"] == 6 and test["n"] == 6 and val["split"] == "val"

    other = make_image_folder(tmp_path / "more", {"a": 2, "c": 3}, size=32, seed=5)
    assert main(["evaluate", str(run), "--data", str(other)]) == 0
    capsys.readouterr()
    more = json.loads((run / "eval-more" / "metrics.json").read_text())
    assert more["n"] == 5 and more["confusion_matrix"]["labels"] == CLASSES

    assert main(["export", str(run)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(tmp_path / "saved_models/tiny/2") and "Parity" in printed[-2]
    assert main(["export", str(run), "--version", "2"]) == 2  # never overwritten
    assert "already exists" in capsys.readouterr().err

    (other / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    done = run_cli(
        "predict", str(tmp_path / "saved_models/tiny"), str(other), "--top-k", "2",
        "--out", str(tmp_path / "preds.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "preds.json").read_text())
    assert len(rows) == 6
    broken = [r for r in rows if r["input"].endswith("broken.png")]
    assert len(broken) == 1 and "error" in broken[0]
    good = [r for r in rows if "top" in r]
    assert len(good) == 5
    for r in good:
        assert [t["label"] for t in r["top"]] != [] and len(r["top"]) == 2
        assert {t["label"] for t in r["top"]} <= set(CLASSES)
        assert r["top"][0]["score"] >= r["top"][1]["score"]


def test_backbones_and_data_commands(tmp_path, capsys):
    assert main(["backbones", "--no-params"]) == 0
    listing = capsys.readouterr().out
    for name in ["mobilenet_v3_small", "efficientnet_v2_b3", "convnext_tiny", "densenet121"]:
        assert name in listing
    assert main(["data", "digits", str(tmp_path / "digits"), "--per-class", "3"]) == 0
    written = sorted(
        p.relative_to(tmp_path / "digits") for p in (tmp_path / "digits").rglob("*.png")
    )
    assert len(written) == 30 and {p.parts[0] for p in written} == {str(d) for d in range(10)}
