"""Strategy choice for the hardware, and a whole tltk run under a two-replica MirroredStrategy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
import yaml
from helpers import make_image_folder, tiny_recipe

from tltk import strategy as st
from tltk.trainer import first_batch_size


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


@pytest.mark.slow
def test_train_under_two_replicas(tmp_path):
    """Two logical CPUs stand in for two GPUs: the model, the per-group-LR optimizer and the
    metrics are built in the strategy's scope, and the global batch is per-replica x 2."""
    data = make_image_folder(tmp_path / "images", {"a": 12, "b": 12}, size=32)
    recipe = tiny_recipe(tmp_path, data, top="top:2", name="mirrored", export={"enabled": False})
    recipe["train"].update(batch_size=4, strategy="mirrored")
    recipe["phases"][1]["layerwise_decay"] = 0.5
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
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
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "MirroredStrategy with 2 replica(s); global batch 8" in log
    assert "RESULT True True" in log
