"""Defaults that follow the hardware: `precision: auto`, `jit_compile: auto`, the global batch,
on this CPU machine and with TensorFlow's device queries mocked for GPUs and a TPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tensorflow as tf

from tltk import hardware as hw
from tltk.errors import TltkError
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


def test_threads_are_recorded_and_described():
    chosen = hw.choose(TrainConfig(batch_size=4, threads=1), tf.distribute.get_strategy(), LOCAL)
    assert chosen.threads == 1 and chosen.as_dict()["threads"] == 1
    assert "; 1 TensorFlow thread(s)" in chosen.describe()
    assert hw.choose(TrainConfig(batch_size=4), tf.distribute.get_strategy(), LOCAL).threads is None


def test_threads_once_tensorflow_runs_is_a_clear_error():
    tf.constant(1.0) + 1.0  # the runtime has started in this process
    before = tf.config.threading.get_intra_op_parallelism_threads()
    hw.set_threads(None)  # nothing asked: nothing to do
    with pytest.raises(TltkError, match="train.threads: 7 cannot be applied.*fresh process"):
        hw.set_threads(7)
    assert tf.config.threading.get_intra_op_parallelism_threads() == before


def test_threads_set_in_a_fresh_process(tmp_path):
    # The pools exist once per process: only a fresh one shows set_threads really sizing them.
    script = (
        "import tensorflow as tf\n"
        "from tltk.hardware import set_threads\n"
        "set_threads(1)\n"
        "x = tf.linalg.matmul(tf.ones((64, 64)), tf.ones((64, 64)))\n"
        "set_threads(1)\n"  # the same again once running: fine
        "t = tf.config.threading\n"
        "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads(),"
        " float(x[0, 0]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split()[-3:] == ["1", "1", "64.0"]
