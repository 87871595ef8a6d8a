"""tltk: transfer-learning recipes for Keras 3 on TensorFlow.

import tltk
result = tltk.train("recipes/digits_transfer.yaml", overrides=["train.verbose=2"])
result.model        # a plain keras.Model
result.metrics      # test metrics (also RUN/metrics.json)
tltk.predict_images(result.export_path, ["some.png"])
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_recipe": "tltk.recipe",
    "Recipe": "tltk.recipe",
    "check_recipe": "tltk.check",
    "TltkError": "tltk.errors",
    "train": "tltk.trainer",
    "TrainResult": "tltk.trainer",
    "continue_run": "tltk.continual.continue_run",
    "continue_recipe": "tltk.continual.continue_run",
    "evaluate_run": "tltk.api",
    "export_run": "tltk.api",
    "lr_find": "tltk.api",
    "LRFinderResult": "tltk.lr_finder",
    "tune": "tltk.tuning.api",
    "TuneResult": "tltk.tuning.api",
    "predict_images": "tltk.predict",
    "predict_texts": "tltk.predict",
    "list_backbones": "tltk.backbones",
    "build_backbone": "tltk.backbones",
}


def __getattr__(name: str):
    # Lazy so that `tltk --help` and `import tltk.recipe` don't pay TensorFlow's import time.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tltk' has no attribute {name!r}")


__all__ = list(_LAZY)
