"""One way to read a label cell, for every source: what a missing label, a multi-label cell and
a regression target are, and how parsed labels become the arrays a `Split` holds.

The rules (`parse_label`):

- A missing label (no cell, or only spaces) is `None`: readers drop the example and report it
  as "missing label ('<label_column>')", or stop under `data.clean.corrupt: error`.
- "class" (one class per example): the stripped cell. A JSON list there is an error (set
  `data.multi_label: true` for several labels).
- "classes" (multi-label): a JSON list (`["cat", "indoor"]`) or names joined by
  `data.label_delimiter`; names are stripped, empty ones dropped, the rest de-duplicated and
  sorted. An explicit empty list `[]` is a real label: none of the classes.
- "value" (regression): a number, else an error naming the origin.

`label_kind` is the head spec's (`tltk.heads.HeadSpec.label_kind`).
"""

from __future__ import annotations

import json

import numpy as np

from tltk.data.errors import DataError
from tltk.recipe import DataConfig

LABEL_KINDS = ("class", "classes", "value")


def label_kind_of(*, multi_label: bool, regression: bool) -> str:
    """The label kind of the loaders' `multi_label` / `regression` flags."""
    return "value" if regression else "classes" if multi_label else "class"


def parse_label(value: object, origin: str, cfg: DataConfig, label_kind: str):
    """A class name ("class"), sorted names ("classes") or a float ("value"); None if missing.

    `value` is a CSV cell (str) or a JSON value; `origin` (`file:line N`) starts every error.
    """
    if label_kind not in LABEL_KINDS:
        raise DataError(f"{origin}: labels of kind {label_kind!r} cannot be read from this source")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if label_kind == "value":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{origin}: label {value!r} is not a number (regression)") from None
    if label_kind == "class":
        if isinstance(value, list):
            raise DataError(
                f"{origin}: label {value!r} is a list; set data.multi_label: true (or head.type: "
                "multilabel) for several labels per example"
            )
        return str(value).strip()
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"{origin}: label {value!r} is not a valid JSON list: {e}") from None
    if not isinstance(value, list):
        value = str(value).split(cfg.label_delimiter) if cfg.label_delimiter else [value]
    return sorted({str(v).strip() for v in value if str(v).strip()})


def class_names_of(labels: list, cfg: DataConfig, label_kind: str) -> list[str]:
    """Sorted class names of parsed labels; regression has one "class", the label column."""
    if label_kind == "value":
        return [cfg.label_column]
    if label_kind == "classes":
        return sorted({name for names in labels for name in names})
    return sorted(set(labels))


def encode_labels(labels: list, class_names: list[str], label_kind: str) -> np.ndarray:
    """Parsed labels -> int64 class ids [N], multi-hot float32 [N, K] or float32 values [N]."""
    if label_kind == "value":
        return np.array(labels, dtype=np.float32)
    index = {c: i for i, c in enumerate(class_names)}
    if label_kind == "classes":
        out = np.zeros((len(labels), len(class_names)), dtype=np.float32)
        for i, names in enumerate(labels):
            out[i, [index[x] for x in names]] = 1.0
        return out
    return np.array([index[x] for x in labels], dtype=np.int64)


def one_hot(ids: np.ndarray, k: int) -> np.ndarray:
    """Class ids [N] -> float32 [N, k] (sources with one class per example, read multi-label)."""
    out = np.zeros((len(ids), k), dtype=np.float32)
    out[np.arange(len(ids)), ids] = 1.0
    return out
