"""`text_rnn`: a from-scratch text backbone (TextVectorization -> Embedding -> bidirectional RNN).

The vocabulary is learned from the TRAINING texts only (never val/test: that would leak their
words into the model) and saved with the run, so a finished run is rebuilt offline from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltk.backbones.base import BackboneError, TextBackbone, register_text_backbone

RNN_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
VOCAB_FILE = "vocabulary.txt"


@dataclass(kw_only=True)
class TextRNNBackbone(TextBackbone):
    config: dict
    """The `backbone.kwargs` it was built with (max_tokens, rnn, units, ...)."""

    asset_type = "text_rnn"

    def save_assets(self, folder: Path) -> dict:
        """The learned vocabulary (one token a line) and the config."""
        vocabulary = self.preprocessor.get_vocabulary()
        (folder / VOCAB_FILE).write_text("".join(f"{w}\n" for w in vocabulary), encoding="utf-8")
        return {"config": self.config}

    @classmethod
    def restore(cls, folder: Path, meta: dict) -> TextRNNBackbone:
        vocabulary = (folder / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]
        return build_text_rnn(
            None, sequence_length=meta["sequence_length"], vocabulary=vocabulary, **meta["config"]
        )


@register_text_backbone("text_rnn", family="text")
def build_text_rnn(
    weights: str | None = None,
    *,
    sequence_length: int = 128,
    train_texts: Sequence[str] | None = None,
    vocabulary: list[str] | None = None,
    max_tokens: int = 20000,
    rnn: str = "lstm",
    units: int = 64,
    embedding_dim: int = 64,
    dropout: float = 0.0,
    standardize: str = "lower_and_strip_punctuation",
) -> TextRNNBackbone:
    """Build the RNN backbone: learn the vocabulary from `train_texts`, or reuse `vocabulary`.

    Args:
        weights: none (or the recipe default `imagenet`, which means nothing here): this
            backbone always starts from random weights.
        sequence_length: tokens per example (longer texts are cut, shorter ones padded).
        train_texts: the training split's texts; the vocabulary is adapted on them only.
        vocabulary: a saved vocabulary (`get_vocabulary()` order) instead of `train_texts`.
        max_tokens, rnn (`lstm`|`gru`), units, embedding_dim, dropout, standardize: the
            `backbone.kwargs` of a recipe.

    Example:
        >>> bb = build_text_rnn(sequence_length=8, train_texts=["a cat", "a dog"], units=4)
        >>> list(bb.groups)
        ['embeddings', 'rnn']
    """
    if weights not in (None, "imagenet", "preset"):
        raise BackboneError(
            f"backbone.weights {weights!r}: text_rnn trains from scratch; set weights: none"
        )
    if rnn not in RNN_LAYERS:
        raise BackboneError(f"backbone.kwargs.rnn {rnn!r}: use one of {', '.join(RNN_LAYERS)}")
    vectorizer = _vectorizer(sequence_length, max_tokens, standardize, vocabulary, train_texts)
    vocab_size = vectorizer.vocabulary_size()
    token_ids = keras.Input((sequence_length,), dtype="int64", name="token_ids")
    embedding = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")
    recurrent = keras.layers.Bidirectional(
        RNN_LAYERS[rnn](units, dropout=dropout), name=f"bidirectional_{rnn}"
    )
    features = recurrent(embedding(token_ids))
    model = keras.Model(token_ids, features, name=f"text_rnn_{rnn}")
    config = dict(
        max_tokens=max_tokens,
        rnn=rnn,
        units=units,
        embedding_dim=embedding_dim,
        dropout=dropout,
        standardize=standardize,
    )
    return TextRNNBackbone(
        name="text_rnn",
        model=model,
        groups={"embeddings": [embedding], "rnn": [recurrent]},
        preprocessor=vectorizer,
        sequence_length=sequence_length,
        config=config,
        info={"source": "text_rnn", "vocabulary_size": vocab_size, "features": 2 * units},
    )


def _vectorizer(sequence_length, max_tokens, standardize, vocabulary, train_texts):
    """The tokenizer: `vocabulary` as given, or learned from the training texts."""
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens,
        output_sequence_length=sequence_length,
        standardize=standardize,
        vocabulary=vocabulary,
        name="text_vectorization",
    )
    if vocabulary is None:
        if isinstance(train_texts, tf.data.Dataset):  # a streamed split: adapt batch by batch
            vectorizer.adapt(train_texts.batch(256))
            if vectorizer.vocabulary_size() > 1:
                return vectorizer
            train_texts = None
        if train_texts is None or not len(train_texts):
            raise BackboneError(
                "text_rnn learns its vocabulary from the training texts, and none were given"
            )
        vectorizer.adapt(np.asarray([str(t) for t in train_texts], dtype=object), batch_size=256)
    return vectorizer
