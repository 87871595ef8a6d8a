"""Export a trained model as a TF-Serving SavedModel with serving signatures, labels and a card.

Layout (TF Serving loads NAME/VERSION/ and ignores `assets.extra/`):

    EXPORT_ROOT/NAME/VERSION/
        saved_model.pb  fingerprint.pb  variables/
        assets.extra/labels.txt        class names, one a line, in score order (not regression)
        assets.extra/tltk.json         kind, task, class names, image size (for `tltk predict`)
        assets.extra/model_card.json   the trainer's card (recipe, metrics, data) + signatures,
        assets.extra/model_card.md     library versions, export time, parity result

The signatures are the modality's preprocessor's `endpoints` (tltk/modalities/), each the
preprocessing of training followed by the model. An image model's (S = its image size):

    serving_default(image_bytes: string [N])            encoded JPEG/PNG/BMP/GIF, decoded with
                                                        `tltk.data.decode_image` like in training
    serve_images(images: float32 [N, H, W, 3], 0-255)   any H, W; resized with `resize_image`

A text model has one signature, `serving_default(texts: string [N])`: raw UTF-8 strings,
tokenized inside the model exactly as in training (load it after `import tensorflow_text`).

All of them return the task type's outputs (its `HeadSpec.serving_outputs`, tltk/heads/); for
classification and multi-label (K classes):
    scores     float32 [N, K]  probabilities in class order (labels.txt order); softmax, or
                               independent sigmoids for multi-label
    classes    string  [N, K]  the class names, parallel to `scores` (TF Serving's convention)
    top_class  string  [N]     the class with the highest score
    top_score  float32 [N]     its score
and for regression:
    prediction float32 [N]

Versions: a version folder is built under a temporary name in NAME/ and renamed onto its number
when complete, so TF Serving never sees half of one and no version is ever replaced. Exports of
one name running at the same time each get their own number; a failed one (parity, disk full, no
permission) leaves no version folder and an ExportError or ParityError saying why. The temporary
folder of a killed export is removed by the next export of that name once its process is gone.
Files get the user's umask like any other write (folders 0755, files 0644 with umask 022), so
a server running as another user can read them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from tltk.heads import HEAD_TYPES, get_head
from tltk.io import atomic_write_json, atomic_write_text
from tltk.model_card import RESERVED_KEYS, build_card, card_markdown, parity_text
from tltk.parity import ParityError, check_parity
from tltk.versions import (  # noqa: F401  (version_dirs, next_version: tltk.export's API)
    ExportError,
    next_version,
    publish_version,
    refuse_taken,
    staged_version,
    version_dirs,
)

if TYPE_CHECKING:
    import keras

    from tltk.modalities.base import Endpoint, Preprocessor

EXTRA_DIR = "assets.extra"
META_FILE = "tltk.json"
LABELS_FILE = "labels.txt"
CARD_JSON, CARD_MD = "model_card.json", "model_card.md"


@dataclass
class ExportResult:
    path: Path
    """The version folder, EXPORT_ROOT/NAME/VERSION."""
    version: int
    parity: dict | None
    """{"max_abs_diff", "n", "passed", "tolerance", "child_imports"}; None: not checked."""
    removed_temporaries: list[Path] = field(default_factory=list)
    """Stale temporary folders of killed exports removed from EXPORT_ROOT/NAME first."""


def export_model(
    model: keras.Model,
    preprocessor: Preprocessor,
    *,
    class_names: list[str],
    export_root: str | Path,
    name: str,
    version: int | None = None,
    task: str = "classification",
    card: dict | None = None,
    parity_inputs: Sequence[bytes | str] | None = None,
) -> ExportResult:
    """Write `model` to EXPORT_ROOT/NAME/VERSION with `preprocessor` (the modality's, see
    tltk/modalities/) inside its signatures, so that they take raw examples.

    With `parity_inputs` (raw examples as `serving_default` takes them), the written
    SavedModel is run in a fresh TensorFlow-only process (with the preprocessor's `imports`)
    and must match the Keras model to 1e-4, else ParityError and no version folder appears.
    An existing version is never overwritten (FileExistsError).
    """
    track = preprocessor.tracked()  # first: a tokenizer is built before it is traced
    meta = {"kind": preprocessor.kind, "task": task, "class_names": list(class_names)}
    return _export(
        model,
        preprocessor.endpoints(model),
        meta={**meta, **preprocessor.export_meta()},
        export_root=export_root,
        name=name,
        version=version,
        card=card,
        parity_inputs=parity_inputs,
        imports=preprocessor.imports,
        track=track,
    )


def export_image_model(
    model: keras.Model, *, image_size: int, parity_inputs: list[bytes] | None = None, **kwargs
) -> ExportResult:
    """`export_model` for a model taking float32 images [N, S, S, 3] in 0-255, S = image_size:
    `serving_default` takes encoded images, `serve_images` pixels of any size. `kwargs`:
    those of `export_model` (class_names, export_root, name, ...)."""
    from tltk.modalities.image import ImagePreprocessor

    return export_model(model, ImagePreprocessor(image_size), parity_inputs=parity_inputs, **kwargs)


def export_text_model(
    model: keras.Model, *, preprocessor, parity_inputs: list[str] | None = None, **kwargs
) -> ExportResult:
    """`export_model` for a text model (token inputs -> scores) whose `preprocessor` (a KerasHub
    TextClassifierPreprocessor or a TextVectorization layer) maps strings to its inputs:
    `serving_default(texts: string [N])` takes raw UTF-8 strings. `kwargs`: as
    `export_image_model`."""
    from tltk.modalities.text import TextPreprocessor

    return export_model(
        model, TextPreprocessor(preprocessor), parity_inputs=parity_inputs, **kwargs
    )


def _export(
    model: keras.Model,
    endpoints: dict[str, Endpoint],
    *,
    meta: dict,
    export_root: str | Path,
    name: str,
    version: int | None,
    card: dict | None,
    parity_inputs: Sequence[bytes | str] | None,
    imports: Sequence[str] = ("tensorflow",),
    track: Sequence = (),
) -> ExportResult:
    """The one export mechanism; modalities differ only in endpoints, meta and imports.

    `meta` (kind, task, class_names, ...) goes to tltk.json. `imports`: the modules a process
    needs to load the model (text: also "tensorflow_text"). `track`: objects the endpoints use
    besides `model` (e.g. a text preprocessor with lookup tables).
    """
    import keras

    _check(model, meta, name, version, card or {})
    spec = get_head(meta["task"])
    root = Path(export_root) / name
    refuse_taken(root, version)
    archive = keras.export.ExportArchive()
    for resource in (model, *track):
        archive.track(resource)
    serve = {sig: _with_outputs(e.fn, meta["class_names"], spec) for sig, e in endpoints.items()}
    for sig, endpoint in endpoints.items():  # traced here: errors come before anything is written
        archive.add_endpoint(sig, serve[sig], input_signature=[endpoint.spec])
    meta = {**meta, "signature": "serving_default", "imports": list(imports)}
    meta["input"] = endpoints["serving_default"].spec.name
    signatures = {
        sig: {"inputs": {e.spec.name: e.doc}, "outputs": spec.output_doc()}
        for sig, e in endpoints.items()
    }
    try:
        with staged_version(root, version) as (tmp, removed):
            archive.write_out(str(tmp), verbose=False)
            _write_extra(tmp / EXTRA_DIR, meta)
            parity = None
            if parity_inputs:
                parity = _parity(tmp, parity_inputs, serve["serving_default"], meta, imports)

            def write_card(v: int) -> None:
                doc = build_card(name, v, meta, signatures, parity, card or {})
                atomic_write_json(tmp / EXTRA_DIR / CARD_JSON, doc)
                atomic_write_text(tmp / EXTRA_DIR / CARD_MD, card_markdown(doc))

            version = publish_version(tmp, root, version, write_card)
    except FileExistsError:
        raise
    except (OSError, tf.errors.OpError) as e:
        raise ExportError(
            f"export of {name!r} failed while writing under {root}: {e}. Nothing was exported "
            "(no version folder was created); free some space or make the folder writable "
            "(or export elsewhere with export.dir)"
        ) from e
    return ExportResult(root / str(version), version, parity, removed)


def _write_extra(extra: Path, meta: dict) -> None:
    extra.mkdir()
    if get_head(meta["task"]).labels_file:
        atomic_write_text(extra / LABELS_FILE, "".join(f"{c}\n" for c in meta["class_names"]))
    atomic_write_json(extra / META_FILE, meta)


def _parity(tmp: Path, inputs, serve, meta: dict, imports: Sequence[str]) -> dict:
    result = check_parity(
        tmp,
        inputs,
        serve,
        input_name=meta["input"],
        output_key=get_head(meta["task"]).parity_output,
        imports=imports,
    )
    if not result["passed"]:
        raise ParityError(
            f"parity check {parity_text(result)}; nothing was exported (no version folder "
            "was created)"
        )
    return result


def _check(model, meta: dict, name: str, version, card: dict) -> None:
    task, class_names = meta["task"], meta["class_names"]
    if task not in HEAD_TYPES:
        raise ValueError(f"task {task!r}: expected one of {', '.join(HEAD_TYPES)}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"model name {name!r}: use letters, digits, '.', '_', '-' (a folder name)")
    if version is not None and (type(version) is not int or version < 1):
        raise ValueError(f"version {version!r}: expected a positive integer")
    width = model.output_shape[-1] if len(model.output_shape) > 1 else 1
    get_head(task).check_outputs(width, class_names)
    clash = sorted(set(card) & (RESERVED_KEYS | set(meta)))
    if clash:
        raise ValueError(f"card keys {clash} are written by the export itself; rename them")


def _with_outputs(fn, class_names: list[str], spec):
    """Wrap `fn` so that it returns the task type's output dict (see the module docstring)."""

    def serve(x):
        return spec.serving_outputs(tf.cast(fn(x), tf.float32), class_names)

    return serve
