"""Predict with an exported SavedModel alone: no Keras model is rebuilt, no training code runs.

Every result is a dict with "input" and one of:
    "top":        [{"label": str, "score": float}, ...] best first (classification, multi-label)
    "prediction": float (regression)
    "error":      str (the input could not be read or decoded; the other inputs still run)
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tltk.data.extensions import IMAGE_EXTENSIONS
from tltk.errors import PredictError
from tltk.export import EXTRA_DIR, META_FILE, version_dirs
from tltk.heads import HEAD_TYPES, get_head
from tltk.io import atomic_write_text

OP_LIBRARIES = ("tensorflow", "tensorflow_text")
"""The only modules a model's tltk.json "imports" may name: libraries whose ops a SavedModel
needs registered before it loads. A copied model must not choose what code runs here."""


@dataclass
class Exported:
    """A loaded tltk export: its serving_default signature and its tltk.json."""

    path: Path
    """The version folder."""
    meta: dict
    signature: Any
    _loaded: Any = field(repr=False, default=None)  # keeps the signature's variables alive

    @property
    def kind(self) -> str | None:
        return self.meta.get("kind")

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]

    def __call__(self, batch: list[bytes] | list[str]) -> dict[str, np.ndarray]:
        """Run serving_default on a batch of encoded images (or texts); numpy outputs."""
        if not batch:  # the signature itself fails on [0, ...] with a shape error deep inside
            raise PredictError("an empty batch: give at least one input")
        (input_name,) = self.signature.structured_input_signature[1]
        outputs = self.signature(**{input_name: tf.constant(batch, dtype=tf.string)})
        return {k: v.numpy() for k, v in outputs.items()}


def load_exported(model_dir: str | Path) -> Exported:
    """Load NAME/VERSION/ or NAME/ (its highest version) written by `tltk.export`."""
    model_dir = Path(model_dir)
    path = model_dir
    if not (path / "saved_model.pb").is_file():
        versions = version_dirs(model_dir)
        if not versions:
            raise FileNotFoundError(
                f"{model_dir}: no saved_model.pb and no version folders (NAME/1/saved_model.pb)"
            )
        path = versions[max(versions)]
    meta_path = path / EXTRA_DIR / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {path} is not a tltk export")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise PredictError(f"{meta_path}: not valid JSON ({e}); re-export the model") from None
    if meta.get("task") not in HEAD_TYPES:
        raise PredictError(
            f"{meta_path}: task {meta.get('task')!r} is not a task type this tltk knows "
            f"({', '.join(HEAD_TYPES)}); predict with the tltk version that exported it"
        )
    import_op_libraries(meta.get("imports", []), meta_path)
    loaded = tf.saved_model.load(str(path))
    return Exported(path, meta, loaded.signatures[meta.get("signature", "serving_default")], loaded)


def import_op_libraries(modules: Any, meta_path: Path) -> None:
    """Import the op libraries a model lists (tensorflow_text for a text model's tokenizer);
    refuse any module not in OP_LIBRARIES before importing anything."""
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise PredictError(f'{meta_path}: "imports" should be a list of module names')
    refused = [m for m in modules if m not in OP_LIBRARIES]
    if refused:
        raise PredictError(
            f'{meta_path}: "imports" names {", ".join(map(repr, refused))}; tltk imports only '
            f"the op libraries {', '.join(OP_LIBRARIES)} for a model, never other code its "
            "files name. Use a model exported by tltk, or remove the entry if you trust it."
        )
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise PredictError(
                f"{meta_path}: this model needs {module!r} (its ops must be registered before "
                f"the model loads), which cannot be imported ({e}). Install the version that "
                f"matches TensorFlow {tf.__version__}: pip install {module.replace('_', '-')}"
            ) from None


def predict_images(
    model_dir: str | Path | Exported,
    inputs: Iterable[str | Path],
    *,
    top_k: int = 5,
    batch_size: int = 64,
) -> list[dict]:
    """Predict image files and folders (recursed; image extensions only, hidden files skipped).

    A file that cannot be read or decoded gives {"input", "error"}; the others are unaffected.
    No file at all (nothing given, empty folders) is a PredictError.
    """
    _check_sizes(top_k, batch_size)
    inputs = [str(item) for item in inputs]
    files = image_files(inputs)
    if not files:
        raise PredictError(
            f"no images to predict in {', '.join(inputs) or 'the inputs (none given)'}: "
            f"folders are searched recursively for {', '.join(IMAGE_EXTENSIONS)} files, "
            "hidden ones skipped"
        )
    exported = _as_exported(model_dir, "image")
    results = []
    for start in range(0, len(files), batch_size):  # read one batch at a time: bounded memory
        batch = [_read(path) for path in files[start : start + batch_size]]
        results += _predict_batch(exported, batch, top_k)
    return results


def predict_texts(
    model_dir: str | Path | Exported,
    texts: Iterable[str],
    *,
    top_k: int = 5,
    batch_size: int = 64,
) -> list[dict]:
    """Predict raw texts with an exported text model; results in input order, "input" = text.
    No text at all is a PredictError."""
    _check_sizes(top_k, batch_size)
    texts = [str(t) for t in texts]
    if not texts:
        raise PredictError("no texts to predict")
    exported = _as_exported(model_dir, "text")
    results = []
    for start in range(0, len(texts), batch_size):
        results += _predict_batch(
            exported, [(t, t, None) for t in texts[start : start + batch_size]], top_k
        )
    return results


def _read(path: Path) -> tuple[str, bytes | None, str | None]:
    try:
        return str(path), path.read_bytes(), None
    except OSError as e:
        return str(path), None, e.strerror or str(e)


def image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given (in order) and the image files inside folders (sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)  # a missing file becomes an error entry, not a crash
    return files


def _as_exported(model_dir: str | Path | Exported, kind: str) -> Exported:
    exported = model_dir if isinstance(model_dir, Exported) else load_exported(model_dir)
    if exported.kind != kind:
        raise ValueError(f"{exported.path} is a {exported.kind} model, not a {kind} model")
    return exported


def _check_sizes(top_k: int, batch_size: int) -> None:
    if top_k < 1 or batch_size < 1:
        raise ValueError(f"top_k ({top_k}) and batch_size ({batch_size}) must be at least 1")


def _predict_batch(
    exported: Exported, entries: list[tuple[str, Any, str | None]], top_k: int
) -> list[dict]:
    """(input label, payload, read error) -> results in the same order; shared by all kinds
    (a text predictor passes (text, text, None) entries and gets the same "top" results)."""
    results: list[dict] = [{"input": label, "error": error} for label, _, error in entries]
    todo = [i for i, (_, _, error) in enumerate(entries) if error is None]
    if todo:
        rows = _run(exported, [entries[i][1] for i in todo], top_k)
        for i, row in zip(todo, rows, strict=True):
            results[i] = {"input": entries[i][0], **row}
    return results


def _run(exported: Exported, batch: list, top_k: int) -> list[dict]:
    try:
        outputs = exported(batch)
    except tf.errors.OpError as e:
        if len(batch) == 1:
            return [{"error": _op_error_text(e)}]
        # One bad input fails its whole batch: run them one by one to isolate it.
        return [row for item in batch for row in _run(exported, [item], top_k)]
    return get_head(exported.task).prediction_rows(outputs, top_k)


def _op_error_text(error: tf.errors.OpError) -> str:
    """The reason in a TF op error ("Unknown image file format. ..."), without graph noise."""
    noise = ("Graph execution error", "Detected at node", "<", "\t", " ")
    lines = [line for line in error.message.splitlines() if line and not line.startswith(noise)]
    return lines[-1] if lines else type(error).__name__


def write_predictions(
    results: list[dict], out: str | Path | None = None, fmt: str | None = None
) -> None:
    """Print a readable table (out=None), or write .csv / .json (by extension, or `fmt`) atomically.

    `fmt` is "table", "csv" or "json"; with out=None and fmt csv/json, that text is printed.
    """
    fmt = fmt or ("table" if out is None else Path(out).suffix.lower().lstrip("."))
    render = {"table": _table, "csv": _csv, "json": _json}.get(fmt)
    if render is None:
        raise ValueError(
            f"{out}: unknown predictions format {fmt!r}; use a .csv or .json file "
            "(or fmt='table'/'csv'/'json')"
        )
    text = render(results)
    if out is None:
        print(text, end="")
    else:
        atomic_write_text(out, text)


def _json(results: list[dict]) -> str:
    return json.dumps(results, indent=2) + "\n"


def _csv(results: list[dict]) -> str:
    k = max((len(r.get("top", [])) for r in results), default=0)
    columns = ["input"]
    if any("prediction" in r for r in results):
        columns.append("prediction")
    for rank in range(1, k + 1):
        columns += [f"label_{rank}", f"score_{rank}"]
    columns.append("error")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = {key: r.get(key) for key in ("input", "prediction", "error") if key in columns}
        for rank, top in enumerate(r.get("top", []), start=1):
            row[f"label_{rank}"], row[f"score_{rank}"] = top["label"], f"{top['score']:.6g}"
        writer.writerow(row)
    return buffer.getvalue()


def _table(results: list[dict]) -> str:
    if not results:
        return "no inputs\n"
    width = max(len(r["input"]) for r in results)
    lines = []
    for r in results:
        if r.get("error"):
            cells = f"error: {r['error']}"
        elif "prediction" in r:
            cells = f"{r['prediction']:.6g}"
        else:
            cells = "  ".join(f"{t['label']} ({t['score']:.3f})" for t in r["top"])
        lines.append(f"{r['input']:<{width}}  {cells}")
    return "\n".join(lines) + "\n"
