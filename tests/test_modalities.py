"""The modality contract, run over every registered modality (tltk.modalities.MODALITIES).

A new modality gets checked here by adding a tiny backbone and split of its examples to
`EXAMPLES`: its preprocessor must give the model the same inputs through the tf.data pipeline
(training, evaluation) as through the exported `serving_default` signature.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from text_helpers import texts

from tltk.backbones import lookup
from tltk.data import Split, build_pipeline
from tltk.modalities import MODALITIES, get_modality
from tltk.model import build_model
from tltk.recipe import HeadConfig


def image_examples(tmp_path):
    """resnet8 at 16 px; three PNG files of other sizes (one gray)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(20, 30, 3), (16, 16, 3), (40, 12)]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(paths[-1])
    split = Split(np.array(paths, dtype=object), np.array([0, 1, 0]), "path", paths)
    return lookup("resnet8").build(None, 16), split


def text_examples(tmp_path):
    """text_rnn on tiny texts; three texts, one of words it never saw and one empty."""
    train = [t for t, _ in texts(2)]
    backbone = lookup("text_rnn").build(sequence_length=5, train_texts=train, units=2)
    examples = np.array([train[0], "zebra quokka", ""], dtype=object)
    return backbone, Split(examples, np.array([0, 1, 0]), "text")


EXAMPLES = {"image": image_examples, "text": text_examples}


def test_every_registered_modality_has_contract_examples():
    assert set(EXAMPLES) == set(MODALITIES), "add the new modality's tiny examples to EXAMPLES"
    for name in MODALITIES:
        assert get_modality(name).name == name and get_modality(name) is get_modality(name)
    with pytest.raises(ValueError, match="expected one of image, text"):
        get_modality("audio")


@pytest.mark.parametrize("name", list(MODALITIES))
def test_serving_gives_the_model_what_tf_data_gives(name, tmp_path):
    keras.utils.set_random_seed(0)
    modality = get_modality(name)
    backbone, split = EXAMPLES[name](tmp_path)
    preprocessor = modality.preprocessor(backbone)
    assert preprocessor.kind == name and split.kind in preprocessor.example_kinds
    model = build_model(backbone, HeadConfig(dropout=0.0), 2).model
    ds = build_pipeline(
        split, num_classes=2, preprocessor=preprocessor, batch_size=8, training=False, seed=0
    )
    (inputs, _), *rest = list(ds)
    assert not rest
    raw = modality.serving_examples(split, len(split))
    assert len(raw) == len(split)
    served = preprocessor(tf.constant(raw))
    for a, b in zip(keras.tree.flatten(inputs), keras.tree.flatten(served), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    endpoints = preprocessor.endpoints(model)
    default = endpoints["serving_default"]
    assert default.spec.dtype == tf.string and default.spec.shape.as_list() == [None]
    preprocessor.tracked()
    np.testing.assert_allclose(
        np.asarray(default.fn(tf.constant(raw))), model.predict(inputs, verbose=0), atol=1e-6
    )
    assert json.loads(json.dumps(preprocessor.export_meta())) == preprocessor.export_meta()
