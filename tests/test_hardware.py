"""Defaults that follow the hardware: `precision: auto`, `jit_compile: auto`, the global batch,
on this CPU machine and with TensorFlow's device queries mocked for GPUs and a TPU."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tltk import hardware as hw
from tltk.recipe import TrainConfig
from tltk.strategy import Role

LOCAL = Role("local", 0, 1)


def test_auto_precision_per_accelerator():
    assert hw.resolve_precision("auto", "cpu", []) == "float32"
    assert hw.resolve_precision("auto", "tpu", []) == "mixed_bfloat16"
    assert hw.resolve_precision("auto", "gpu", [(7, 0)]) == "mixed_float16"  # V100
    assert hw.resolve_precision("auto", "gpu", [(9, 0), (8, 0)]) == "mixed_float16"
    assert hw.resolve_precision("auto", "gpu", [(6, 1)]) == "float32"  # no tensor cores
    assert hw.resolve_precision("auto", "gpu", [(8, 6), (6, 1)]) == "float32"  # the slowest
    assert hw.resolve_precision("auto", "gpu", []) == "float32"  # capability unknown
    assert hw.resolve_precision("mixed_float16", "cpu", []) == "mixed_float16"  # as asked
    assert hw.resolve_precision("float32", "gpu", [(9, 0)]) == "float32"


def test_auto_jit_compile_per_accelerator():
    assert hw.resolve_jit_compile("auto", "cpu") is False
    assert hw.resolve_jit_compile("auto", "gpu") is True
    assert hw.resolve_jit_compile("auto", "tpu") is True
    assert hw.resolve_jit_compile("auto", "gpu", deterministic=True) is False
    assert hw.resolve_jit_compile(True, "cpu") is True  # as asked
    assert hw.resolve_jit_compile(False, "gpu") is False


def test_auto_is_the_default_and_resolves_to_float32_without_xla_on_this_cpu():
    train = TrainConfig(batch_size=16)
    assert (train.precision, train.jit_compile) == ("auto", "auto")
    chosen = hw.choose(train, tf.distribute.get_strategy(), LOCAL)
    assert chosen.accelerator == "cpu" and chosen.precision == "float32"
    assert chosen.jit_compile is False
    assert (chosen.replicas, chosen.batch_per_replica, chosen.global_batch) == (1, 16, 16)
    assert chosen.as_dict()["strategy"] == "DefaultStrategy"
    assert "precision float32; jit_compile off" in chosen.describe()


class FakeStrategy:
    def __init__(self, replicas: int):
        self.num_replicas_in_sync = replicas


@pytest.mark.parametrize(
    ("capability", "precision"), [((9, 0), "mixed_float16"), ((6, 0), "float32")]
)
def test_gpus_mocked(monkeypatch, capability, precision):
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(4)]
    monkeypatch.setattr(
        hw.tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else []
    )
    monkeypatch.setattr(
        hw.tf.config.experimental,
        "get_device_details",
        lambda device: {"device_name": "NVIDIA H100", "compute_capability": capability},
    )
    chosen = hw.choose(TrainConfig(batch_size=32), FakeStrategy(4), LOCAL)
    assert (chosen.accelerator, chosen.precision, chosen.jit_compile) == ("gpu", precision, True)
    assert chosen.global_batch == 128  # 32 per replica x 4 GPUs


def test_tpu_mocked(monkeypatch):
    class FakeTPUStrategy(FakeStrategy):
        pass

    monkeypatch.setattr(hw.tf.distribute, "TPUStrategy", FakeTPUStrategy)
    chosen = hw.choose(TrainConfig(batch_size=64), FakeTPUStrategy(8), LOCAL)
    assert (chosen.accelerator, chosen.precision, chosen.jit_compile) == (
        "tpu",
        "mixed_bfloat16",
        True,
    )
    assert chosen.global_batch == 512
    explicit = TrainConfig(batch_size=64, precision="float32", jit_compile=False)
    assert hw.choose(explicit, FakeTPUStrategy(8), LOCAL).precision == "float32"


def test_a_worker_of_a_cluster_is_named_in_the_record():
    role = Role("worker", 0, 2)
    chosen = hw.choose(TrainConfig(batch_size=4), tf.distribute.get_strategy(), role)
    assert chosen.task == "worker 0 (chief)" and chosen.workers == 2
    assert "over 2 workers, this one worker 0 (chief)" in chosen.describe()
    assert "input sharded by DATA" in chosen.describe()
