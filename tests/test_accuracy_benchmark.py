"""benchmarks/accuracy.py end to end on its toy case (`--quick`): data written as fixed split
files, a baseline, a linear probe and a tltk run on the same split, the table and JSON."""

from __future__ import annotations

import csv
import json

import pytest

from benchmarks import accuracy, accuracy_methods

pytestmark = pytest.mark.slow  # one tltk run, a probe and a baseline: about 15 CPU-s


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory):
    """(root, argv, report) of one quick run of the toy case under a temporary root."""
    root = tmp_path_factory.mktemp("accuracy")
    argv = ["--cases", "toy", "--quick", "--work", str(root / "work")]
    argv += ["--data-root", str(root / "data")]
    return root, argv, accuracy.main(argv)


def test_toy_case_gives_one_row_per_method_with_scores_and_times(toy_report):
    root, _, report = toy_report
    table = report["table"]
    assert [r["method"] for r in table] == [
        "LR pixels",
        "probe ResNet8/random",
        "tltk default ResNet8/random",
    ]
    for row in table:
        assert row["case"] == "toy" and row["seeds"] == 1
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["f1_macro"] <= 1.0
        assert row["cpu_s"] > 0 and row["wall_s"] > 0
    # Three well separated digits: the pixel baseline is far above chance (1/3).
    assert table[0]["accuracy"] > 0.8
    # The split is fixed files: 15 + 10 per class for train and val, every other 0, 1, 2 tested.
    sizes = report["sizes"]["toy/seed0"]
    assert (sizes["classes"], sizes["train"], sizes["val"]) == (3, 45, 30) and sizes["test"] > 400
    folder = root / "data" / "accuracy_quick" / "toy" / "seed0"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["test", "train", "val"]
    markdown = (root / "work" / "accuracy.md").read_text()
    assert "| case | method | seeds | accuracy | macro-F1 | micro-F1 | CPU-s | wall-s |" in markdown
    assert markdown.count("\n| toy |") == 3
    # The tltk row says how it trained: a random backbone, so no probe; one from-scratch phase.
    tltk_row = next(r for r in report["records"] if r["method"].startswith("tltk"))
    assert "probe_val_accuracy" not in tltk_row and len(tltk_row["phase_end_epochs"]) == 1
    assert tltk_row["phase_end_epochs"][0] >= 1
    saved = json.loads((root / "work" / "accuracy.json").read_text())
    assert saved["table"] == table and len(saved["records"]) == 3


def test_the_tltk_run_saw_the_baselines_split_and_a_changed_one_is_refused(toy_report, tmp_path):
    root, _, report = toy_report
    run = next(r["run"] for r in report["records"] if r["method"].startswith("tltk"))
    data = accuracy._load(None, accuracy.cases.CaseRun("classification", _toy_data(root)))
    accuracy_methods.check_same_split(f"{run}/splits.csv", data)  # as the harness did
    rows = list(csv.reader(open(f"{run}/splits.csv")))
    changed = tmp_path / "splits.csv"
    with open(changed, "w", newline="") as f:
        csv.writer(f).writerows(rows[:-1])  # one test image fewer
    with pytest.raises(SystemExit, match="differ from the baselines"):
        accuracy_methods.check_same_split(changed, data)


def test_a_second_run_with_the_same_work_folder_reuses_finished_rows(toy_report):
    root, argv, first = toy_report
    again = accuracy.main(argv)
    assert again["records"] == first["records"]  # nothing retrained
    assert again["table"] == first["table"]


def test_reuse_takes_the_baselines_of_an_earlier_work_folder_and_methods_filters(toy_report):
    root, argv, first = toy_report
    argv2 = ["--cases", "toy", "--quick", "--work", str(root / "work2")]
    argv2 += ["--data-root", str(root / "data"), "--reuse", str(root / "work")]
    again = accuracy.main([*argv2, "--methods", "pixels"])  # the tltk row is not run
    assert [r["method"] for r in again["table"]] == ["LR pixels", "probe ResNet8/random"]
    assert all(r["reused_from"] == str(root / "work") for r in again["records"])
    assert again["table"] == [r for r in first["table"] if not r["method"].startswith("tltk")]


def _toy_data(root) -> dict:
    return {"source": "folder", "path": str(root / "data" / "accuracy_quick" / "toy" / "seed0")}


def test_set_puts_a_key_in_every_tltk_rows_recipe(tmp_path):
    from benchmarks import accuracy_cases

    args = accuracy.parse_args(["--set", "train.ema=0.99", "--set", "evaluate.tta=flip"])
    assert args.overrides == {"train.ema": 0.99, "evaluate.tta": "flip"}
    bench = accuracy_cases.Bench(work=tmp_path, data_root=tmp_path, overrides=args.overrides)
    recipe = bench.housekeeping({"name": "r", "train": {"batch_size": 8}})
    assert recipe["train"]["ema"] == 0.99 and recipe["train"]["batch_size"] == 8
    assert recipe["evaluate"] == {"tta": "flip"}
    with pytest.raises(SystemExit):
        accuracy.parse_args(["--set", "train.ema"])
