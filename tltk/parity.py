"""Parity check: an exported SavedModel, loaded by a fresh TensorFlow-only process, must give the
scores the in-process Keras model gives.

The fresh process is what a server has: no tltk, no Keras model code, no KerasHub, only
TensorFlow (and, for text models, `tensorflow_text` for its ops). It loads the SavedModel, feeds
the examples through a signature and saves one output to an .npy file in a temporary folder that
is removed afterwards. The user's environment, working folder and files are left as they were.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

TOLERANCE = 1e-4
CHILD_TIMEOUT_S = 900
_BATCH = 32

# Modules that must NOT be loaded in the child: their presence would mean the SavedModel needs
# library code that a TensorFlow Serving host does not have. (TensorFlow itself imports `keras`,
# so that one cannot be checked.)
_FORBIDDEN = ("tltk", "keras_hub", "keras_nlp", "keras_cv")

_CHILD = r"""
import base64, importlib, json, sys

request = json.load(open(sys.argv[1]))
for module in request["imports"]:
    importlib.import_module(module)
tf = sys.modules["tensorflow"]
np = sys.modules["numpy"]  # loaded by tensorflow; no other import


def leaked():
    return sorted(m for m in request["forbidden"] if m in sys.modules)


if leaked():
    sys.exit("parity child: imported " + ", ".join(leaked()) + "; it must use TensorFlow alone")
signature = tf.saved_model.load(request["model_dir"]).signatures[request["signature"]]
inputs = [base64.b64decode(s) for s in request["inputs"]]
outputs = []
for start in range(0, len(inputs), request["batch"]):
    batch = tf.constant(inputs[start : start + request["batch"]], dtype=tf.string)
    outputs.append(signature(**{request["input_name"]: batch})[request["output_key"]].numpy())
if leaked():
    sys.exit("parity child: loading the model imported " + ", ".join(leaked()))
np.save(request["out"], np.concatenate(outputs))
"""


def reference_outputs(serve: Callable, inputs: Sequence[bytes], output_key: str) -> np.ndarray:
    """`serve(batch)[output_key]` run here, eagerly and on the CPU like the child.

    `serve` is the Python function the signature was traced from (decode + Keras model + output
    dict), so the comparison covers tracing, saving and loading, not a second preprocessing.
    """
    import tensorflow as tf

    with tf.device("/CPU:0"):
        parts = [
            serve(tf.constant(inputs[start : start + _BATCH], dtype=tf.string))[output_key]
            for start in range(0, len(inputs), _BATCH)
        ]
    return np.concatenate([np.asarray(part, dtype=np.float32) for part in parts])


class ParityError(RuntimeError):
    """The exported model does not reproduce the Keras model (or could not be run alone)."""


def _run_child(request: dict, tmp: Path, model_dir: str | Path) -> np.ndarray:
    """Run `_CHILD` on `request` in a fresh process inside `tmp`; the outputs it saved."""
    request_path = tmp / "request.json"
    request_path.write_text(json.dumps(request))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(request_path)],
            cwd=tmp,  # not the user's folder: nothing there is importable by accident
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ParityError(
            f"parity check: the fresh TensorFlow process did not finish in {CHILD_TIMEOUT_S} s"
        ) from None
    out = Path(request["out"])
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise ParityError(
            f"parity check: loading {model_dir} in a fresh TensorFlow-only process failed "
            f"(exit code {proc.returncode}):\n{tail}"
        )
    return np.load(out)


def check_parity(
    model_dir: str | Path,
    inputs: Sequence[bytes | str],
    serve: Callable,
    *,
    input_name: str,
    output_key: str,
    signature: str = "serving_default",
    imports: Sequence[str] = ("tensorflow",),
    tolerance: float = TOLERANCE,
) -> dict:
    """Compare `signature` of the SavedModel at `model_dir`, run in a fresh process, with
    `serve` (the function it was traced from) run in this one, on `inputs`.

    `inputs` are encoded images (bytes) or texts (str). Returns {"max_abs_diff", "n", "passed",
    "tolerance", "child_imports"}; raises ParityError when the child process fails.

    Both sides run on the CPU (the child with CUDA_VISIBLE_DEVICES=-1): a GPU's TF32/cuDNN
    kernels differ from the CPU's by more than the tolerance, and a second process must not
    fight the trainer for GPU memory.
    """
    encoded = [(x.encode("utf-8") if isinstance(x, str) else bytes(x)) for x in inputs]
    expected = reference_outputs(serve, encoded, output_key)
    with tempfile.TemporaryDirectory(prefix="tltk-parity-") as tmp:
        out = Path(tmp) / "scores.npy"
        request = {
            "model_dir": str(Path(model_dir).resolve()),
            "signature": signature,
            "input_name": input_name,
            "output_key": output_key,
            "imports": list(imports),
            "forbidden": list(_FORBIDDEN),
            "inputs": [base64.b64encode(x).decode("ascii") for x in encoded],
            "out": str(out),
            "batch": _BATCH,
        }
        got = _run_child(request, Path(tmp), model_dir)
    if got.shape != expected.shape:
        raise ParityError(
            f"parity check: the SavedModel's {output_key!r} has shape {got.shape}, "
            f"the Keras model's {expected.shape}"
        )
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    return {
        "max_abs_diff": diff,
        "n": len(encoded),
        "passed": bool(diff <= tolerance),  # NaN compares False: a NaN output fails
        "tolerance": tolerance,
        "child_imports": list(imports),
    }
