"""The `tltk` command line end to end on a tiny generated folder: train, evaluate, export,
predict, check, backbones, data; errors exit 2 with the message on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import make_image_folder, tiny_recipe

from tltk.cli import expected_failure, main
from tltk.errors import RecipeError
from tltk.phases import PhaseError, trainable_groups
from tltk.quiet import drop_startup_noise, import_tensorflow_quietly

CLASSES = ["a", "b", "c"]


def write_recipe(tmp_path: Path, small: bool = False) -> Path:
    """The tiny recipe on 30 generated images; `small`: resnet8 at 16 px (the cheapest backbone
    to train and export: for commands that run it) instead of MobileNetV3-Small at 32 px."""
    size = 16 if small else 32
    data = make_image_folder(tmp_path / "images", {c: 10 for c in CLASSES}, size=size)
    recipe = tiny_recipe(tmp_path, data, top="top:2" if small else "top:1")
    if small:
        recipe["backbone"].update(name="resnet8", image_size=size)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    tltk = Path(sys.executable).parent / "tltk"
    return subprocess.run([str(tltk), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_check_prints_the_resolved_recipe_quietly_without_keras_hub(tmp_path):
    recipe = write_recipe(tmp_path)
    code = (
        "import sys; from tltk.cli import main; "
        f"rc = main(['check', {str(recipe)!r}, '--set', 'train.batch_size=64']); "
        "assert 'keras_hub' not in sys.modules, 'imported keras_hub'; "
        "assert 'tensorflow_datasets' not in sys.modules, 'imported tfds'; "
        "sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["train"]["batch_size"] == 64
    assert resolved["phases"][1]["train"] == "top:1"
    assert resolved["head"]["type"] == "classification"  # defaults filled in
    # TensorFlow loaded (the backbone registry needs it), and its C++ start-up log stayed quiet.
    assert out.stderr == ""


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
    recipe = write_recipe(tmp_path, small=True)
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


@pytest.mark.parametrize(
    "item",
    ["phases.5.epochs=3", "phases.x.epochs=3", "name=[unclosed", "name=!!python/name:os.system"],
)
def test_a_bad_set_is_one_line_naming_it(tmp_path, capsys, item):
    recipe = write_recipe(tmp_path)
    assert main(["check", str(recipe), "--set", item]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"tltk check: error: --set {item!r}: ")
    assert captured.err.count("\n") == 1 and "line" not in captured.err


def test_check_validates_the_backbone_name(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    check = ["check", str(recipe), "--set"]
    assert main([*check, "backbone.name=mobilenet_v3_smal"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tltk check: error: backbone.name: unknown backbone 'mobilenet_v3_smal'.")
    assert "Did you mean: mobilenet_v3_small" in err and err.count("\n") == 1
    assert main([*check, "backbone.name=text_rnn"]) == 2
    assert "'text_rnn' is a text backbone" in capsys.readouterr().err
    assert main([*check, f"backbone.name={tmp_path}"]) == 2  # a folder, but no preset in it
    assert "folder without config.json" in capsys.readouterr().err
    assert main([*check, f"backbone.name={tmp_path / 'gone'}"]) == 2
    assert (
        f"looks like a path, but there is no folder {tmp_path / 'gone'} " in capsys.readouterr().err
    )
    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "config.json").write_text("{}")
    for name in ["MobileNet-V3-Small", "hf://org/model", "kaggle://org/model/keras/x", preset]:
        assert main([*check, f"backbone.name={name}"]) == 0, capsys.readouterr().err
    assert main([*check, "backbone.name=efficientnet_v2_b0", "--set", "modality=text"]) == 2
    assert "is an image backbone" in capsys.readouterr().err


def test_check_reads_keras_hub_presets_for_other_names(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    check = ["check", str(recipe), "--set"]
    assert main([*check, "backbone.name=resnet_18_imagenet"]) == 0
    capsys.readouterr()
    assert main([*check, "backbone.name=bert_tiny_en_uncase"]) == 2
    assert "Did you mean: bert_tiny_en_uncased" in capsys.readouterr().err


def test_offline_tfds_is_one_line_exit_2(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    data = f"data={{source: tfds, name: mnist, download: false, data_dir: {tmp_path / 'tfds'}}}"
    assert main(["train", str(recipe), "--set", data]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tltk train: error: tfds dataset 'mnist' is not prepared in ")
    assert "data.download is false" in err and err.count("\n") == 1


def test_os_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    assert main(["data", "digits", str(tmp_path / "file" / "digits"), "--per-class", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tltk data: error: [Errno ") and str(tmp_path / "file") in err
    assert err.count("\n") == 1

    def buggy(args):
        raise ValueError("a bug outside tltk's own raises")

    monkeypatch.setattr("tltk.cli.data.cmd_data", buggy)
    with pytest.raises(ValueError, match="a bug outside"):
        main(["data", "digits", str(tmp_path)])

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("tltk.cli.data.cmd_data", interrupted)
    assert main(["data", "digits", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "tltk data: interrupted\n"


def test_expected_failures():
    def raised(error: Exception) -> Exception:
        try:
            raise error
        except Exception as e:
            return e

    missing = raised(ModuleNotFoundError("No module named 'safetensors'", name="safetensors"))
    assert expected_failure(missing).startswith("No module named 'safetensors': a package")
    assert expected_failure(raised(ModuleNotFoundError("tltk.x", name="tltk.x"))) is None
    assert expected_failure(raised(PermissionError(13, "Permission denied", "/m"))) == (
        "[Errno 13] Permission denied: '/m'"
    )
    assert expected_failure(raised(RecipeError("r.yaml: bad"))) == "r.yaml: bad"
    # ValueError/RuntimeError: expected when tltk raised it (a message for users), else a bug.
    assert expected_failure(raised(RuntimeError("from a test module"))) is None
    with pytest.raises(PhaseError) as e:
        trainable_groups("top:x", ["stem", "block1", "top"])
    assert expected_failure(e.value) == str(e.value)


def test_verbose_shows_tensorflow_logs_and_tracebacks(tmp_path, capsys, monkeypatch):
    import tltk.quiet

    calls = []
    monkeypatch.setattr(tltk.quiet, "import_tensorflow_quietly", lambda: calls.append(1))
    monkeypatch.delenv("TLTK_VERBOSE", raising=False)
    assert main(["backbones", "--no-params"]) == 0 and calls == [1]
    for argv in (["-v", "backbones"], ["backbones", "--verbose"]):
        assert main([*argv, "--no-params"]) == 0 and calls == [1]
    monkeypatch.setenv("TLTK_VERBOSE", "1")
    assert main(["backbones", "--no-params"]) == 0 and calls == [1]
    capsys.readouterr()
    recipe = write_recipe(tmp_path)
    assert main(["check", str(recipe), "--set", "phases.5.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RecipeError" in err
    assert err.splitlines()[-1].startswith("tltk check: error: --set 'phases.5.epochs=1': phases")


# Lines TensorFlow 2.21's import wrote here (absl before InitializeLog: the odd time field is its).
TF_STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795533566.453238    8371 port.cc:153] oneDNN custom operations are on. You may see
I0000 00:00:1795533566.453575    8371 cudart_stub.cc:31] Could not find cuda drivers on your machine
I0000 00:00:1795533518.339978    8184 cpu_feature_guard.cc:227] This TensorFlow binary is optimized
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow
E0000 00:00:1795533569.808677    8371 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA
W1124 15:19:29.123456  123 some_file.cc:10] a warning after start-up
"""


def test_tensorflow_startup_lines_are_dropped_and_the_rest_kept():
    kept = "a line from a library\nF0000 00:00:1795533569.8 8371 x.cc:1] a fatal error\n"
    assert drop_startup_noise(TF_STARTUP + kept) == kept


def noisy_module(tmp_path, name: str, fails: bool) -> str:
    """A module that writes TF-like start-up lines (and one other) to fd 2 when imported."""
    lines = TF_STARTUP + "not from absl\n"
    body = f"import os\nos.write(2, {lines.encode()!r})\n"
    (tmp_path / f"{name}.py").write_text(body + ("raise ImportError('broken')\n" if fails else ""))
    return name


def test_import_quietly_holds_back_startup_lines(tmp_path, capfd, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    name = noisy_module(tmp_path, "tltk_test_noisy_ok", fails=False)
    import_tensorflow_quietly(name)
    assert capfd.readouterr().err == "not from absl\n"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and name in sys.modules
    sys.modules.pop(name)
    # A failed import shows everything it wrote: the lines may explain the failure.
    name = noisy_module(tmp_path, "tltk_test_noisy_fails", fails=True)
    with pytest.raises(ImportError, match="broken"):
        import_tensorflow_quietly(name)
    assert capfd.readouterr().err == TF_STARTUP + "not from absl\n"


def test_a_builtin_value_error_inside_tltk_code_is_a_bug():
    code = (
        "def says():\n    raise ValueError('a message')\n\ndef bug():\n    return float('epoch')\n"
    )
    module = {"__name__": "tltk.fake"}
    exec(compile(code, "tltk/fake.py", "exec"), module)
    for name, expected in [("says", "a message"), ("bug", None)]:
        with pytest.raises(ValueError) as e:
            module[name]()
        assert expected_failure(e.value) == expected
