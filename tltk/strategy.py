"""Pick the tf.distribute strategy for the hardware (or the one a recipe names)."""

from __future__ import annotations

import json
import os

import tensorflow as tf


def detect_strategy_name() -> str:
    """TPU -> tpu; TF_CONFIG with several workers -> multi_worker; 2+ GPUs -> mirrored;
    one GPU -> one_device; else default."""
    if (
        os.environ.get("TPU_NAME")
        or os.environ.get("COLAB_TPU_ADDR")
        or os.path.exists("/dev/accel0")
    ):
        return "tpu"
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if tf_config.get("cluster", {}).get("worker"):
        return "multi_worker"
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return "mirrored"
    if len(gpus) == 1:
        return "one_device"
    return "default"


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Build the strategy; model and optimizer must then be created inside `strategy.scope()`."""
    if name == "auto":
        name = detect_strategy_name()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy) -> str:
    return f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)"
