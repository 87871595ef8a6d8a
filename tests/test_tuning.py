"""Hyper-parameter search: the `tune:` schema, its translation to KerasTuner, the search
folder (results, best recipe, resume) and one real tiny search."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from helpers import make_image_folder, tiny_recipe

from tltk.recipe import RecipeError, load_recipe
from tltk.recipe.tuning import parse_duration

SPACE = {
    "phases.1.learning_rate": {"log": [1.0e-4, 1.0e-2]},
    "head.dropout": [0.0, 0.3],
    "head.hidden_units": {"range": [0, 32], "step": 16},
}


def searched(tmp_path, space=None, **tune):
    raw = tiny_recipe(tmp_path, tmp_path / "images", export={"enabled": False})
    raw["tune"] = {"space": space or SPACE, "max_trials": 3, **tune}
    return raw


def write(tmp_path, raw, name="r.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- the schema ------------------------------------------------------------------------------


def test_a_valid_space_loads_and_keeps_its_kinds(tmp_path):
    tune = load_recipe(searched(tmp_path)).tune
    assert tune.space["head.dropout"].choice == [0.0, 0.3]
    assert tune.space["head.hidden_units"].is_int
    assert not tune.space["phases.1.learning_rate"].is_int
    assert tune.objective.name == "val_loss" and tune.objective.resolved_direction == "min"


def test_objective_direction_follows_the_metric_unless_given(tmp_path):
    raw = searched(tmp_path, objective="val_accuracy")
    assert load_recipe(raw).tune.objective.resolved_direction == "max"
    raw = searched(tmp_path, objective={"name": "val_accuracy", "direction": "min"})
    assert load_recipe(raw).tune.objective.resolved_direction == "min"


def test_a_misspelled_key_names_the_closest_one_and_its_line(tmp_path):
    path = write(tmp_path, searched(tmp_path, space={"head.dropuot": [0.1, 0.2]}))
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}: tune.space.head.dropuot (line ")
    assert "did you mean 'dropout'?" in message


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"head.dropout": {"range": [0.0, 1.5]}}, "head.dropout=1.5 is invalid"),
        ({"phases.5.epochs": [1, 2]}, "there is no item 5"),
        ({"head.dropout": {"range": [0.5, 0.1]}}, "low < high"),
        ({"head.dropout": {"log": [0.0, 0.5]}}, "low > 0"),
        ({"head.dropout": {"choice": [0.1], "range": [0.0, 0.5]}}, "exactly one of"),
        ({"head.dropout": []}, "empty choice list"),
        ({"head.pooling": ["avg", "mean"]}, "head.pooling='mean' is invalid"),
        ({}, "empty search space"),
    ],
)
def test_invalid_spaces_are_clear_errors(tmp_path, space, expected):
    raw = searched(tmp_path)
    raw["tune"]["space"] = space
    with pytest.raises(RecipeError, match="tune.space") as error:
        load_recipe(raw)
    assert expected in str(error.value)


def test_a_budget_is_required_and_durations_are_read(tmp_path):
    with pytest.raises(RecipeError, match="no budget"):
        load_recipe(searched(tmp_path, max_trials=None))
    assert load_recipe(searched(tmp_path, max_time="20m")).tune.max_time == 1200
    assert parse_duration("1.5h") == 5400 and parse_duration("90") == 90
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_tune_does_not_change_the_run_fingerprint(tmp_path):
    from tltk.runs import fingerprint

    raw = searched(tmp_path)
    plain = dict(raw)
    plain.pop("tune")
    assert fingerprint(load_recipe(raw)) == fingerprint(load_recipe(plain))


# --- translation to KerasTuner ------------------------------------------------------------------


def test_space_becomes_keras_tuner_hyperparameters(tmp_path):
    from tltk.tuning import space

    recipe = load_recipe(searched(tmp_path, space={**SPACE, "phases.1.weight_decay": [None, 0.01]}))
    hp = {h.name: h for h in space.hyperparameters(recipe.tune).space}
    lr = hp["phases.1.learning_rate"]
    got = (type(lr).__name__, lr.min_value, lr.max_value, lr.sampling)
    assert got == ("Float", 1e-4, 1e-2, "log")
    units = hp["head.hidden_units"]
    got = (type(units).__name__, units.min_value, units.max_value, units.step)
    assert got == ("Int", 0, 32, 16)
    assert type(hp["head.dropout"]).__name__ == "Choice"
    # A choice mixing null and numbers travels as JSON and comes back as the recipe's values.
    assert hp["phases.1.weight_decay"].values == ["null", "0.01"]
    assert space.recipe_value(recipe.tune.space["phases.1.weight_decay"], "null") is None


def test_a_trial_recipe_has_the_trial_values_and_no_tune_section(tmp_path):
    from tltk.tuning import space

    recipe = load_recipe(searched(tmp_path))
    values = {"phases.1.learning_rate": 0.005, "head.dropout": 0.3, "head.hidden_units": 16}
    trial = space.trial_recipe(recipe, {**values, "tuner/epochs": 4})
    assert trial.tune is None
    assert trial.phases[1].learning_rate == 0.005 and trial.phases[1].epochs == 4
    assert (trial.head.dropout, trial.head.hidden_units) == (0.3, 16)


@pytest.mark.parametrize(
    ("space", "tuner", "shared"),
    [
        ({"phases.1.learning_rate": [0.1, 0.01], "phases.1.train": ["top:1", "all"]}, "random", 1),
        ({"phases.1.learning_rate": [0.1, 0.01]}, "hyperband", 1),
        ({"phases.1.learning_rate": [0.1, 0.01], "head.dropout": [0.0, 0.2]}, "random", 0),
        ({"phases.0.learning_rate": [0.1, 0.01]}, "random", 0),
        ({"augment.policy": ["none", "light"]}, "random", 0),
    ],
)
def test_only_a_search_of_later_phase_keys_shares_the_head(tmp_path, space, tuner, shared):
    from tltk.tuning.shared_head import later_phase_keys_only

    recipe = load_recipe(searched(tmp_path, space=space, tuner=tuner))
    assert later_phase_keys_only(recipe) is bool(shared)


# --- the search, with a stand-in for training (fast) -------------------------------------------


def fake_objective(values):
    """A known optimum: learning rate 1e-3, dropout 0.3, hidden units 16."""
    lr = values["phases.1.learning_rate"]
    return (math.log10(lr) + 3) ** 2 + abs(values["head.dropout"] - 0.3)


@pytest.fixture
def fake_training(monkeypatch):
    """Replace a trial's training by `fake_objective`; records every trial trained."""
    from tltk.io import atomic_write_json
    from tltk.tuning import tuner

    calls: list[tuple[str, dict]] = []
    stop_at: dict[str, int | None] = {"call": None}

    def train_trial(search, trial_id, values):
        calls.append((trial_id, dict(values)))
        if stop_at["call"] == len(calls):
            raise KeyboardInterrupt  # as a killed process: nothing after this runs
        record = {"value": fake_objective(values), "seconds": 0.1, "runs": ["x"]}
        atomic_write_json(search.trial_dir(trial_id) / "trial.json", record)
        return record

    monkeypatch.setattr(tuner, "train_trial", train_trial)
    return calls, stop_at


def test_search_writes_sorted_results_and_the_best_recipe(tmp_path, fake_training):
    import tltk

    calls, _ = fake_training
    result = tltk.tune(searched(tmp_path, max_trials=4, objective="val_loss"))
    assert len(calls) == 4 and not result.failed
    with open(result.dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    scores = [float(r["val_loss"]) for r in rows]
    assert scores == sorted(scores)  # best (lowest) first
    expected = min(fake_objective(values) for _, values in calls)
    assert result.best_value == pytest.approx(expected)
    best = load_recipe(result.best_recipe_path)
    assert best.tune is None and best.export.enabled is False  # the recipe's own setting
    best_values = dict(calls)[rows[0]["trial"]]
    assert best.phases[1].learning_rate == pytest.approx(best_values["phases.1.learning_rate"])
    assert (result.dir / "objective_vs_keys.png").stat().st_size > 1000
    assert result.table().splitlines()[1].startswith(rows[0]["trial"])


def test_a_killed_search_resumes_without_repeating_trials(tmp_path, fake_training):
    import tltk

    calls, stop_at = fake_training
    raw = searched(tmp_path, max_trials=3)
    stop_at["call"] = 2
    with pytest.raises(KeyboardInterrupt):
        tltk.tune(raw)
    killed = calls[1]
    stop_at["call"] = None
    result = tltk.tune(raw)  # the same command
    # Trial 0 is not run again; trial 1, running when killed, runs again with its values.
    assert [c[0] for c in calls] == ["0", "1", "1", "2"]
    assert calls[2] == killed
    assert len(result.rows) == 3 and not result.failed
    again = tltk.tune(raw)  # finished: nothing to train
    assert len(calls) == 4 and again.best_value == result.best_value
    more = tltk.tune(raw | {"tune": raw["tune"] | {"max_trials": 4}})  # a larger budget
    assert [c[0] for c in calls] == ["0", "1", "1", "2", "3"] and more.dir == result.dir


def test_hyperband_gives_its_epochs_to_the_last_phase(tmp_path, fake_training):
    import tltk
    from tltk.tuning import space

    calls, _ = fake_training
    raw = searched(tmp_path, tuner="hyperband", max_trials=8)
    raw["phases"][1]["epochs"] = 4  # Hyperband's max_epochs
    tltk.tune(raw)
    epochs = [values[space.HYPERBAND_EPOCHS] for _, values in calls]
    assert set(epochs) == {2, 4} and epochs[0] == 2  # short trials first, then the survivors
    recipe = load_recipe(raw)
    for _, values in calls:
        trial = space.trial_recipe(recipe, values)
        assert trial.phases[1].epochs == values[space.HYPERBAND_EPOCHS]
        assert trial.phases[0].epochs == recipe.phases[0].epochs


def test_executions_per_trial_train_seeds_in_turn_and_average(tmp_path, monkeypatch):
    import tltk.trainer
    from tltk.tuning import search

    seeds = []

    def fake_train(recipe, run_dir, **kwargs):
        seeds.append(recipe.seed)
        Path(run_dir).mkdir(parents=True)

    monkeypatch.setattr(tltk.trainer, "train", fake_train)
    monkeypatch.setattr(search, "objective_of", lambda run_dir, recipe: len(seeds) / 10)
    raw = searched(tmp_path, executions_per_trial=3)
    raw["seed"] = 7
    found = search.open_search(load_recipe(raw), tmp_path / "search")
    values = {"phases.1.learning_rate": 1e-3, "head.dropout": 0.0, "head.hidden_units": 0}
    record = search.train_trial(found, "0", values)
    assert seeds == [7, 8, 9]
    assert record["executions"] == pytest.approx([0.1, 0.2, 0.3])
    assert record["value"] == pytest.approx(0.2)
    assert [Path(r).name for r in record["runs"]] == ["0", "0-2", "0-3"]


def test_a_trial_error_stops_the_search_with_that_error(tmp_path, monkeypatch):
    import tltk
    from tltk.tuning import tuner

    def broken(search, trial_id, values):
        raise RecipeError("phases[1].train: unknown group 'blokc3'")

    monkeypatch.setattr(tuner, "train_trial", broken)
    with pytest.raises(RecipeError, match="blokc3"):
        tltk.tune(searched(tmp_path))


def test_a_diverged_trial_is_a_failed_trial_and_the_search_goes_on(tmp_path, monkeypatch):
    import tltk
    from tltk.runs import TrainingDiverged
    from tltk.tuning import tuner

    seen = []

    def diverge_first(search, trial_id, values):
        seen.append(trial_id)
        if len(seen) == 1:
            raise TrainingDiverged("phase 'top' diverged")
        return {"value": 1.0}

    monkeypatch.setattr(tuner, "train_trial", diverge_first)
    result = tltk.tune(searched(tmp_path, max_trials=2))
    assert result.failed == ["0"] and result.best_value == 1.0
    assert [r["status"] for r in result.rows] == ["COMPLETED", "FAILED"]


def test_a_failed_trial_leaves_no_model_in_the_session(tmp_path, monkeypatch):
    import keras

    import tltk.trainer
    from tltk.runs import TrainingDiverged
    from tltk.tuning import search

    def diverging_train(recipe, **kwargs):
        keras.layers.Dense(1)  # the trial's layers, named in Keras' session
        raise TrainingDiverged("phase 'top' diverged")

    monkeypatch.setattr(tltk.trainer, "train", diverging_train)
    found = search.open_search(load_recipe(searched(tmp_path)), tmp_path / "search")
    values = {"phases.1.learning_rate": 1e-3, "head.dropout": 0.0, "head.hidden_units": 0}
    keras.backend.clear_session()
    with pytest.raises(TrainingDiverged):
        search.train_trial(found, "0", values)
    assert keras.layers.Dense(1).name == "dense"  # not dense_1: the session was cleared


def test_a_time_budget_stops_new_trials(tmp_path, fake_training):
    import tltk
    from tltk.tuning.search import TuneError

    calls, _ = fake_training
    with pytest.raises(TuneError, match="no trial finished"):
        tltk.tune(searched(tmp_path, max_trials=None, max_time=1e-6))
    assert calls == []  # the budget was spent before the first trial


def test_the_objective_is_the_best_epoch_of_the_last_phase(tmp_path):
    from tltk.tuning.search import TuneError, objective_of

    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text(
        "epoch,loss,val_loss,val_accuracy\n0,1.0,0.1,0.9\n1,0.9,0.6,0.5\n2,0.8,0.4,0.7\n"
    )
    (run / "state.json").write_text(json.dumps({"phases": [{}, {"start_epoch": 1}]}))
    recipe = load_recipe(searched(tmp_path))  # objective val_loss: min
    assert objective_of(run, recipe) == pytest.approx(0.4)  # epoch 0 was the head phase
    recipe = load_recipe(searched(tmp_path, objective="val_accuracy"))
    assert objective_of(run, recipe) == pytest.approx(0.7)
    with pytest.raises(TuneError, match="has val_loss, val_accuracy"):
        objective_of(run, load_recipe(searched(tmp_path, objective="val_auc")))


@pytest.mark.slow  # three processes that import TensorFlow; the chief polls its exit every 20 s
def test_a_chief_and_two_workers_share_the_trials_out_and_run_none_twice(tmp_path):
    """KerasTuner's distributed mode on 127.0.0.1: the chief hands out trials, each worker runs
    what it gets (training replaced by a known objective in tests/tune_driver.py)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    path = write(
        tmp_path,
        searched(
            tmp_path,
            space={"phases.1.learning_rate": SPACE["phases.1.learning_rate"]},
            max_trials=4,
        ),
    )
    log = tmp_path / "ran.log"
    driver = Path(__file__).with_name("tune_driver.py")
    env = dict(os.environ, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port)
    procs = [
        subprocess.Popen(
            [sys.executable, str(driver), str(path), str(log)],
            env=dict(env, KERASTUNER_TUNER_ID=tuner_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for tuner_id in ("chief", "tuner0", "tuner1")
    ]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    ran = [line.split() for line in log.read_text().splitlines()]
    trials = [trial for trial, _ in ran]
    assert sorted(trials) == ["0", "1", "2", "3"]  # every trial once, none twice
    assert {tuner for _, tuner in ran} == {"tuner0", "tuner1"}  # shared out; the chief ran none
    (search,) = (tmp_path / "runs" / "tiny").glob("tune-*")
    with open(search / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["trial"] for r in rows) == trials and {r["status"] for r in rows} == {
        "COMPLETED"
    }
    assert (search / "best_recipe.yaml").is_file()


# --- real searches -------------------------------------------------------------------------


def real_search(tmp_path, space):
    make_image_folder(tmp_path / "images", {"a": 6, "b": 6})
    raw = searched(tmp_path, space=space, max_trials=2, objective="val_accuracy")
    raw["backbone"].update(name="resnet8", image_size=16)
    raw["evaluate"] = {"plots": False}
    raw["train"]["callbacks"].update(checkpoint=False, backup=False)
    return raw


@pytest.fixture
def counted_fits(monkeypatch):
    """Every keras.Model.fit call, by the run folder it trained in (its CSV log's)."""
    import keras

    fits: list[int] = []
    real_fit = keras.Model.fit

    def fit(self, *args, **kwargs):
        fits.append(kwargs.get("epochs", 0) - kwargs.get("initial_epoch", 0))
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    return fits


@pytest.mark.slow
def test_a_real_search_trains_each_trial_as_a_run_and_the_best_recipe_trains(
    tmp_path, counted_fits
):
    import tltk
    from tltk.cli import main

    space = {"phases.1.learning_rate": {"log": [1.0e-4, 1.0e-2]}, "head.dropout": [0.0, 0.3]}
    path = write(tmp_path, real_search(tmp_path, space))
    assert main(["tune", str(path)]) == 0
    assert len(counted_fits) == 4  # a head key is searched: each trial trains both phases
    result = tltk.tune(path)  # finished: the same results, nothing trained
    assert len(counted_fits) == 4
    assert [r["status"] for r in result.rows] == ["COMPLETED", "COMPLETED"]
    for row in result.rows:  # each trial is a finished tltk run with its history and metrics
        run = Path(row["run"])
        state = json.loads((run / "state.json").read_text())
        assert state["finished"] and (run / "metrics.json").is_file()
        trial = load_recipe(run / "recipe.yaml")
        assert trial.head.dropout == row["head.dropout"]
        assert 0.0 <= row["val_accuracy"] <= 1.0
    # The best recipe is a plain recipe `tltk train` runs as is.
    assert main(["train", str(result.best_recipe_path)]) == 0
    best_runs = [p for p in (tmp_path / "runs" / "tiny").iterdir() if p.name[:1].isdigit()]
    assert len(best_runs) == 1 and json.loads((best_runs[0] / "state.json").read_text())["finished"]


@pytest.mark.slow
def test_later_phase_trials_start_from_one_head_trained_once(tmp_path, counted_fits):
    import h5py
    import numpy as np

    import tltk

    space = {"phases.1.learning_rate": {"log": [1.0e-4, 1.0e-2]}}
    result = tltk.tune(real_search(tmp_path, space))
    # One head phase (the base run) and one fine-tuning phase per trial: 3 fits, not 4.
    assert counted_fits == [1, 1, 1]
    base = result.dir / "base" / "1"
    assert json.loads((base / "state.json").read_text())["finished"]
    assert [p.name for p in base.parent.iterdir()] == ["1"]  # no stray `latest` link

    def weights(path):
        with h5py.File(path) as f:
            out = []
            f.visititems(lambda _, d: out.append(d[()]) if isinstance(d, h5py.Dataset) else 0)
            return out

    head = weights(base / "weights" / "phase0.weights.h5")
    for row in result.rows:
        run = Path(row["run"])
        state = json.loads((run / "state.json").read_text())
        assert state["finished"] and state["phases"][0]["shared_from"] == str(base)
        trial_head = weights(run / "weights" / "phase0.weights.h5")
        assert all(np.array_equal(a, b) for a, b in zip(head, trial_head, strict=True))
        history = (run / "history.csv").read_text().splitlines()
        assert len(history) == 3  # header, the shared head epoch, the trial's own epoch


@pytest.fixture
def feature_passes(monkeypatch):
    """Every backbone pass over a split for cached features (FeatureCache._compute), by split."""
    from tltk.features import FeatureCache

    passes: list[str] = []
    real_compute = FeatureCache._compute

    def compute(self, split):
        passes.append(split)
        return real_compute(self, split)

    monkeypatch.setattr(FeatureCache, "_compute", compute)
    return passes


def head_only_search(tmp_path, folder: str):
    raw = real_search(tmp_path, {"head.dropout": [0.0, 0.5], "phases.0.learning_rate": [0.01]})
    raw["phases"] = raw["phases"][:1]  # the head phase alone: every epoch on cached features
    raw["phases"][0]["epochs"] = 2
    raw["train"]["runs_dir"] = str(tmp_path / folder)
    return raw


@pytest.mark.slow
def test_a_head_key_search_runs_the_backbone_once_for_every_trial(
    tmp_path, feature_passes, monkeypatch
):
    import tltk
    from tltk.tuning import search, shared_head

    recipe = load_recipe(head_only_search(tmp_path, "shared"))
    assert shared_head.head_phase_keys_only(recipe)
    shared = tltk.tune(recipe, train_best=True)
    # Two trials, each a cached head phase on train and val and evaluated on test, then the
    # best recipe trained: one backbone pass per split for all three runs.
    assert feature_passes == ["train", "val", "test"]
    assert len(shared.rows) == 2 and {r["head.dropout"] for r in shared.rows} == {0.0, 0.5}
    assert sorted(p.name for p in (shared.dir / "trials").iterdir()) == ["0", "1"]  # no link
    best = shared.trained.metrics  # the best trial's recipe, trained again on the same features
    assert best["accuracy"] == read_metrics(Path(shared.rows[0]["run"]))["accuracy"]
    # Without the store each trial runs the backbone itself (test: through the whole model,
    # not counted here), and learns and scores the same.
    monkeypatch.setattr(search.shared_head, "head_phase_keys_only", lambda recipe: False)
    feature_passes.clear()
    alone = tltk.tune(head_only_search(tmp_path, "alone"))
    assert feature_passes == ["train", "val", "train", "val"]
    for a, b in zip(shared.rows, alone.rows, strict=True):
        assert a["head.dropout"] == b["head.dropout"]
        history = [read_history(Path(r["run"])) for r in (a, b)]
        for column in ("loss", "val_loss"):
            assert history[0][column] == pytest.approx(history[1][column], rel=1e-4, abs=1e-5)
        test = [read_metrics(Path(r["run"])) for r in (a, b)]
        assert test[0]["accuracy"] == test[1]["accuracy"]
        assert test[0]["loss"] == pytest.approx(test[1]["loss"], rel=1e-4, abs=1e-5)


def read_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def read_history(run: Path) -> dict[str, list[float]]:
    from tltk.plots import read_history_csv

    return read_history_csv(run / "history.csv")


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"head.dropout": [0.0, 0.2], "phases.1.learning_rate": [0.1, 0.01]}, True),
        ({"phases.0.learning_rate": [0.1, 0.01], "head.label_smoothing": [0.0, 0.1]}, True),
        ({"head.pooling": ["avg", "max"]}, False),
        ({"backbone.image_size": [16, 32]}, False),
        ({"augment.policy": ["none", "light"]}, False),
    ],
)
def test_which_searches_share_one_feature_pass(tmp_path, space, expected):
    from tltk.tuning.shared_head import head_phase_keys_only

    assert head_phase_keys_only(load_recipe(searched(tmp_path, space=space))) is expected


def test_cli_tune_errors_are_one_line_and_exit_2(tmp_path, capsys):
    from tltk.cli import main

    bad = write(tmp_path, searched(tmp_path, space={"head.dropuot": [0.1]}))
    assert main(["tune", str(bad)]) == 2
    assert "did you mean 'dropout'?" in capsys.readouterr().err
    plain = searched(tmp_path)
    plain.pop("tune")
    assert main(["tune", str(write(tmp_path, plain, "plain.yaml"))]) == 2
    assert "has no `tune:` section" in capsys.readouterr().err
