"""Modalities: what kind of example a run learns from (images, texts), one `Modality` each.

A modality owns everything that differs between image and text runs, so the rest of tltk
asks it instead of branching on the name (see tltk/modalities/base.py for the contract):

    data       `load_data`: its loader (tltk.data.load_image_data / load_text_data)
    model      `build_backbone`: its backbone families; `restore_backbone` from a run folder
    inputs     `preprocessor`: a `Preprocessor` (images: decode + resize to the model's size in
               0..255; texts: the tokenizer) that the one tf.data pipeline, evaluation and
               every exported serving signature apply, so all three see the same inputs
    training   `augment`: its batch augmentation (images only)
    run folder `save_run_assets`: what rebuilding the run offline needs besides the weights
    export     `serving_examples` (the parity check's raw inputs); the preprocessor's
               `endpoints` are the SavedModel's signatures

Adding a modality (say audio) = one file here with its `Modality` and `Preprocessor` + its
test + one line in `MODALITIES`; tests/test_modalities.py then checks that its preprocessor
gives the same inputs through tf.data as through serving.

The registry maps names to "module:Class" paths and imports a modality only when asked, so
`import tltk.recipe` (which validates `modality` against it) does not load TensorFlow.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from tltk.registry import instantiate

if TYPE_CHECKING:
    from tltk.modalities.base import Modality

MODALITIES: dict[str, str] = {
    "image": "tltk.modalities.image:ImageModality",
    "text": "tltk.modalities.text:TextModality",
}


@cache
def get_modality(name: str) -> Modality:
    """The registered modality `name`; ValueError naming the registered ones otherwise."""
    return instantiate(MODALITIES, name, what="modality", registry_name="MODALITIES")


__all__ = ["MODALITIES", "get_modality"]
