"""Strategy choice for the hardware, and a whole tltk run under a two-replica MirroredStrategy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
import yaml
from helpers import make_image_folder, tiny_recipe

from tltk import strategy as st
from tltk.fit_setup import first_batch_size

TWO_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
"""Script preamble: two logical CPUs stand in for two GPUs (before anything builds a device)."""
SMALL = {"name": "resnet8", "image_size": 16}
"""The runs' backbone: what is checked is the strategy's, and resnet8 at 16 px is the cheapest
to build and trace (twice: one copy per replica)."""


def test_detect_strategy_name(monkeypatch):
    for var in ("TPU_NAME", "COLAB_TPU_ADDR", "TF_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(st.os.path, "exists", lambda p: False)  # no /dev/accel0
    gpus: list = []
    monkeypatch.setattr(st.tf.config, "list_physical_devices", lambda kind=None: gpus)
    assert st.detect_strategy_name() == "default"
    gpus.append("GPU:0")
    assert st.detect_strategy_name() == "one_device"
    gpus.append("GPU:1")
    assert st.detect_strategy_name() == "mirrored"
    cluster = {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert st.detect_strategy_name() == "multi_worker"
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    assert st.detect_strategy_name() == "tpu"


def test_named_strategies_on_this_machine():
    assert st.make_strategy("default") is tf.distribute.get_strategy()
    one = st.make_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy) and one.num_replicas_in_sync == 1
    assert "OneDeviceStrategy with 1 replica(s)" == st.describe(one)


def test_small_splits_get_a_first_batch_that_splits_evenly():
    assert first_batch_size(100, 8, 1) == 8
    assert first_batch_size(100, 8, 2) == 8  # a full first batch splits evenly
    assert first_batch_size(5, 8, 2) == 4  # 5 would split 3/2, which Keras cannot average
    assert first_batch_size(5, 8, 1) == 8
    assert first_batch_size(1, 8, 4) == 4


def _train_check(tmp_path) -> str:
    """The script of test_train_under_two_replicas."""
    data = make_image_folder(tmp_path / "images", {"a": 12, "b": 12}, size=16)
    recipe = tiny_recipe(tmp_path, data, top="top:2", name="mirrored", export={"enabled": False})
    recipe["backbone"].update(SMALL)
    recipe["train"].update(batch_size=4, strategy="mirrored")
    recipe["phases"][1]["layerwise_decay"] = 0.5
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    script = textwrap.dedent(
        f"""
        import tltk.strategy, tltk.trainer
        made = []
        def two_cpus(name):
            assert name == "mirrored", name
            made.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
            return made[-1]
        tltk.trainer.make_strategy = two_cpus
        result = tltk.trainer.train({str(path)!r})
        strategy = made[0]
        assert all(strategy.extended.variable_created_in_scope(v.value)
                   for v in result.model.weights), "a variable outside the strategy's scope"
        n_test = len(result.data.splits["test"])
        print("RESULT", result.metrics["n"] == n_test, result.history["epoch"] == [0, 1])
        """
    )
    return script


def _metrics_check(tmp_path) -> str:
    """The script of test_metrics_under_two_replicas_equal_one_replica_on_the_same_weights."""
    data = make_image_folder(tmp_path / "images", {"a": 20, "b": 19}, size=16)
    recipe = tiny_recipe(tmp_path, data, name="parity", export={"enabled": False})
    recipe["backbone"].update(SMALL)
    recipe["data"].update(val_fraction=1 / 3, test_fraction=1 / 3)
    recipe["train"]["batch_size"] = 4
    recipe["head"] = {"l2": 0.01}  # Keras' val_loss includes the penalty; so must ours
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    script = textwrap.dedent(
        f"""
        import json
        import keras
        from tltk import tasks
        from tltk.callbacks import ValidationMetrics
        from tltk.recipe import load_recipe
        recipe = load_recipe({str(path)!r})
        data = tasks.load_data(recipe)
        assert len(data.splits["test"]) == 13 and len(data.splits["val"]) == 13
        out, weights = {{}}, {str(tmp_path / "w.weights.h5")!r}
        for replicas in (1, 2):
            strategy = (tf.distribute.get_strategy() if replicas == 1
                        else tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
            keras.utils.set_random_seed(0)
            with strategy.scope():
                tm = tasks.build_task_model(recipe, data)
                tm.model.compile(loss=tasks.loss(recipe), metrics=tasks.metrics(recipe, tm))
            if replicas == 1:
                tm.model.save_weights(weights)
            tm.model.load_weights(weights)
            m = tasks.evaluate(recipe, tm, data, "test", {str(tmp_path)!r} + f"/e{{replicas}}",
                               8, replicas=replicas)
            assert m["n"] == 13, m["n"]  # every test example once, no blank counted
            val = ValidationMetrics(
                tasks.pipeline(recipe, data, "val", tm, 8, training=False, replicas=replicas),
                tasks.targets(recipe, data, "val"), tasks.loss(recipe),
                tasks.metrics(recipe, tm))
            val.set_model(tm.model)
            out[replicas] = {{"test": {{k: v for k, v in m.items() if isinstance(v, float)}},
                             "val": val.evaluate()}}
            if replicas == 1:
                ds = tasks.pipeline(recipe, data, "val", tm, 8, training=False)
                out["keras"] = tm.model.evaluate(ds, return_dict=True, verbose=0)
        print("RESULT", json.dumps(out))
        """
    )
    return script


@pytest.fixture(scope="module")
def two_replica_logs(tmp_path_factory) -> dict[str, str]:
    """The two-replica checks' scripts, one after the other in one child process (the two
    logical CPUs must be made before TensorFlow makes a device, so they need a fresh process;
    one for both is a TensorFlow start fewer): {check: its log, tracebacks included}."""
    checks = {
        "train": _train_check(tmp_path_factory.mktemp("mirrored")),
        "metrics": _metrics_check(tmp_path_factory.mktemp("parity")),
    }
    script = TWO_CPUS + "import traceback\n"
    for name, body in checks.items():  # a failed check is reported; the next still runs
        script += f"print('BEGIN {name}')\ntry:\n{textwrap.indent(body, '    ')}\n"
        script += f"except Exception:\n    traceback.print_exc()\nprint('END {name}')\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # stdout and stderr in the order written
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return {
        name: done.stdout.split(f"BEGIN {name}\n", 1)[1].split(f"END {name}\n", 1)[0]
        for name in checks
    }


@pytest.mark.slow
def test_train_under_two_replicas(two_replica_logs):
    """Two logical CPUs stand in for two GPUs: the model, the per-group-LR optimizer and the
    metrics are built in the strategy's scope, and the global batch is per-replica x 2."""
    log = two_replica_logs["train"]
    assert "Traceback" not in log, log[-3000:]
    assert "MirroredStrategy with 2 replica(s); global batch 8" in log
    assert "RESULT True True" in log


@pytest.mark.slow
def test_metrics_under_two_replicas_equal_one_replica_on_the_same_weights(two_replica_logs):
    """13 test and 13 validation examples in global batches of 8: the last batch (5) cannot be
    split evenly, so it is padded with blanks that are never counted. Every metric, and the
    `val_*` logs, must equal the single-replica values; the validation logs must also equal
    Keras' own `evaluate` on the unpadded split."""
    log = two_replica_logs["metrics"]
    assert "Traceback" not in log, log[-3000:]
    out = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])
    one, two, keras_val = out["1"], out["2"], out["keras"]
    assert set(one["test"]) == set(two["test"]) and len(one["test"]) >= 4
    for key, value in one["test"].items():
        assert two["test"][key] == pytest.approx(value, abs=1e-5), key
    for key, value in one["val"].items():
        assert two["val"][key] == pytest.approx(value, abs=1e-5), key
        assert keras_val[key[4:]] == pytest.approx(value, abs=1e-5), key
