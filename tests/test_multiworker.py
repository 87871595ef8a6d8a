"""Multi-worker training really run: two worker processes on 127.0.0.1 under TF_CONFIG
(MultiWorkerMirroredStrategy), the same recipe as a single process.

The recipe is deterministic (`train.deterministic`, no dropout, no augmentation) and the single
process trains with the same global batch (4 per worker x 2 workers = 8), on a training split
of 24 that divides into whole batches, so both see the same batches: MultiWorkerMirrored
all-reduces the gradients of the two halves of each batch, the same mean up to float rounding.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
import yaml
from helpers import make_image_folder, tiny_recipe

from tltk import strategy as st
from tltk.multiworker import from_chief, share_arrays

DRIVER = Path(__file__).with_name("fault_driver.py")
TOL = 1e-5


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Pre-split: train 3 x 8 (three whole global batches of 8), val and test 3 x 3 (a last
    batch of 1 that two replicas must pad)."""
    root = tmp_path_factory.mktemp("multiworker") / "images"
    for seed, (split, n) in enumerate([("train", 8), ("val", 3), ("test", 3)]):
        make_image_folder(root / split, {"a": n, "b": n, "c": n}, size=16, seed=seed)
    return root


def _recipe(tmp_path: Path, images: Path, batch_size: int) -> Path:
    recipe = tiny_recipe(tmp_path, images, epochs=(1, 2), top="top:2", name="mw")
    recipe["backbone"].update(name="resnet8", image_size=16)  # 78k parameters: seconds a step
    recipe["head"] = {"dropout": 0.0}
    recipe["train"].update(batch_size=batch_size, deterministic=True)
    recipe["export"]["parity"] = False  # the export itself is tested elsewhere
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch(recipe: Path, stages: tuple[str, ...] = ("none", "none")) -> list[tuple[int, str]]:
    """`tltk train` on one worker per stage (worker 0 is the chief), run by tests/fault_driver.py
    (a stage kills its worker at that point); waits for all: [(rc, log)]."""
    commands = [[str(DRIVER), str(recipe), stage] for stage in stages]
    return _cluster(commands, recipe.parent)


def _cluster(commands: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    """Start `python COMMAND` as worker i of a cluster on 127.0.0.1 for each command."""
    ports = _free_ports(len(commands))
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index, command in enumerate(commands):
        tmp = cwd / f"tmp-worker{index}"
        tmp.mkdir(exist_ok=True)
        task = {"type": "worker", "index": index}
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(tmp),  # where a worker's scratch folder goes
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, *command],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    out = []
    for proc in procs:
        log, _ = proc.communicate(timeout=400)
        out.append((proc.returncode, log))
    return out


def _run_folder(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs" / "mw").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, runs  # the chief's, resumed in place; no worker's
    return runs[0]


def _weights(run: Path) -> dict[str, np.ndarray]:
    """The model's own weights (a process that trained also saves its optimizer's)."""
    out = {}

    def keep(name, obj):
        if isinstance(obj, h5py.Dataset) and name.startswith("layers/"):
            out[name] = obj[()]

    with h5py.File(run / "model.weights.h5") as f:
        f.visititems(keep)
    return out


def _numbers(run: Path) -> dict[str, float]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, images):
    tmp = tmp_path_factory.mktemp("single")
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    recipe = _recipe(tmp, images, batch_size=8)
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(recipe), "none"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    run = _run_folder(tmp)
    return _weights(run), _numbers(run)


def _check_job(tmp_path: Path, logs: list[tuple[int, str]], single_process) -> Path:
    for index, (rc, log) in enumerate(logs):
        assert rc == 0, f"worker {index}:\n{log[-4000:]}"
    chief_log = logs[0][1]
    assert "MultiWorkerMirroredStrategy with 2 replica(s); global batch 8" in chief_log
    assert "input sharded by DATA" in chief_log
    run = _run_folder(tmp_path)
    hardware = json.loads((run / "state.json").read_text())["hardware"]
    assert hardware["workers"] == 2 and hardware["task"] == "worker 0 (chief)"
    assert [v.name for v in (tmp_path / "saved_models" / "mw").iterdir()] == ["1"]
    assert not list((tmp_path / "tmp-worker1").iterdir())  # the worker's scratch is gone
    weights, numbers = _weights(run), _numbers(run)
    ref_weights, ref_numbers = single_process
    assert weights.keys() == ref_weights.keys()
    for name, value in ref_weights.items():
        np.testing.assert_allclose(weights[name], value, atol=TOL, err_msg=name)
    assert numbers == pytest.approx(ref_numbers, abs=TOL)
    return run


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_a_killed_worker_resumes_from_the_chiefs_backup(
    tmp_path, images, single_process
):
    """The two workers train the head phase and the last phase's first epoch, one is killed in
    its second; relaunched, they finish it from the chief's backup, and the job's weights and
    metrics are one process's. (One job: an uninterrupted one would train the same epochs in
    two more TensorFlow processes and check nothing this one does not.)"""
    recipe = _recipe(tmp_path, images, batch_size=4)
    (chief_rc, chief_log), (worker_rc, worker_log) = _launch(recipe, ("none", "mid_epoch"))
    assert worker_rc == -signal.SIGKILL, worker_log[-3000:]
    assert chief_rc == 2 and "another worker of the job stopped" in chief_log, chief_log[-3000:]
    backup = _run_folder(tmp_path) / "backup" / "phase1" / "latest.weights.h5"
    assert backup.is_file()  # the last phase's first epoch, which the relaunch resumes from
    for path in (tmp_path / "tmp-worker1").iterdir():  # what the SIGKILL left behind
        subprocess.run(["rm", "-rf", str(path)], check=True)
    logs = _launch(recipe)
    for _, log in logs:
        assert "Phase 1/2" not in log  # the head phase was done: not trained again
        assert "Phase 2/2 'top': training" in log and "epochs 3-3" in log
    assert "Resuming run" in logs[0][1]
    _check_job(tmp_path, logs, single_process)
    assert "worker 1: done; the chief writes the run's results" in logs[1][1]
    # The finished job relaunched: nothing to do on any worker, nothing written.
    (chief_rc, chief_log), (worker_rc, worker_log) = _launch(recipe)
    assert chief_rc == 0 and "already finished" in chief_log, chief_log[-3000:]
    assert worker_rc == 0 and "worker 1: the chief's run had already finished" in worker_log
    _run_folder(tmp_path)  # still the one run folder
    assert [v.name for v in (tmp_path / "saved_models" / "mw").iterdir()] == ["1"]
    assert not list((tmp_path / "tmp-worker1").iterdir())


STOCK_FIT = """
import json, os
import numpy as np, tensorflow as tf, keras
from tltk.multiworker import DataMismatch, check_same_as_chief
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 2), "float32"), np.ones(8, "float32")))
try:
    model.fit(ds.batch(4), epochs=1, verbose=0)
    print("FIT OK")
except ValueError as error:
    print("FIT FAILS", error)
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
check_same_as_chief(strategy, "data", b"same splits!")
try:
    check_same_as_chief(strategy, "data", b"%d: this worker's splits" % index)
except DataMismatch as error:
    print("MISMATCH", error)
"""


@pytest.mark.slow
def test_keras_still_needs_the_multi_worker_adapter(tmp_path):
    """Keras 3's fit under TensorFlow's own MultiWorkerMirroredStrategy on two workers still
    fails (keras-team/keras#20585). When this test fails, Keras is fixed: remove
    `tltk.strategy.KerasMultiWorkerStrategy` and make the stock strategy.

    The same two workers check their data against the chief's: the same digest passes, a
    different one stops every worker (not only the one that differs, which would leave the
    others waiting for it)."""
    for rc, log in _cluster([["-c", STOCK_FIT], ["-c", STOCK_FIT]], tmp_path):
        assert rc == 0, log[-3000:]
        assert "FIT FAILS" in log and "PerReplica" in log, log[-3000:]
        assert "MISMATCH not every worker has the same data as the chief" in log, log[-3000:]


def test_roles_from_tf_config(monkeypatch):
    assert st.cluster_role(tf.distribute.get_strategy()) == st.Role("local", 0, 1)
    cases = [
        ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
        ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
    ]
    for cluster, task, index, chief in cases:
        role = st.Role(task, index, sum(map(len, cluster.values())), "chief" in cluster)
        assert role.is_chief is chief and role.multi_worker
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}}))
    monkeypatch.setattr(st.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(st.os.path, "exists", lambda p: False)
    assert st.detect_strategy_name() == "default"  # one task is no cluster


def test_broadcasts_outside_a_cluster_are_the_values_themselves():
    strategy = tf.distribute.get_strategy()
    np.testing.assert_array_equal(from_chief(strategy, [1.5, 2.0]), [1.5, 2.0])
    arrays = [np.ones((2, 3), "float32"), np.arange(4)]
    for got, want in zip(share_arrays(strategy, arrays), arrays, strict=True):
        np.testing.assert_array_equal(got, want)


def test_every_pipeline_tells_the_workers_to_share_it_by_example(tmp_path):
    """AutoShardPolicy.DATA, said explicitly: each worker keeps its share of every global
    batch (TensorFlow's AUTO would look for files to split first)."""
    import keras

    from tltk.data import Split, build_pipeline
    from tltk.modalities.image import ImagePreprocessor
    from tltk.modalities.text import TextPreprocessor

    folder = make_image_folder(tmp_path / "images", {"a": 3, "b": 3}, size=8)
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    texts = TextPreprocessor(keras.layers.TextVectorization(vocabulary=["some", "text"]))
    labels = np.array([0, 0, 0, 1, 1, 1])
    for kind, examples, preprocessor in (
        ("path", paths, ImagePreprocessor(8)),
        ("text", ["some text"] * 6, texts),
    ):
        split = Split(np.array(examples, dtype=object), labels, kind=kind)
        for training, remainder in ((True, "drop"), (False, "pad"), (False, "keep")):
            ds = build_pipeline(
                split, num_classes=2, preprocessor=preprocessor, batch_size=4,
                training=training, seed=0, remainder=remainder,
            )  # fmt: skip
            policy = ds.options().experimental_distribute.auto_shard_policy
            assert policy == tf.data.experimental.AutoShardPolicy.DATA, (kind, training)
