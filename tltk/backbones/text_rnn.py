"""`text_rnn`: a from-scratch text backbone (TextVectorization -> Embedding -> bidirectional RNN).

The vocabulary is learned from the TRAINING texts only (never val/test: that would leak their
words into the model) and saved with the run, so a finished run is rebuilt offline from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tltk.backbones.base import Backbone, BackboneError, register_backbone

RNN_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@register_backbone("text_rnn", family="text", default_size=0)
def build_text_rnn(
    weights: str | None = None,
    image_size: int | None = None,
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
) -> Backbone:
    """Build the RNN backbone: learn the vocabulary from `train_texts`, or reuse `vocabulary`.

    Args:
        weights: none (or the recipe default `imagenet`, which means nothing here): this
            backbone always starts from random weights.
        image_size: must be None; a text backbone has no image input.
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
    if image_size is not None:
        raise BackboneError("text_rnn is a text backbone: use it with `task: text`")
    if weights not in (None, "imagenet", "preset"):
        raise BackboneError(
            f"backbone.weights {weights!r}: text_rnn trains from scratch; set weights: none"
        )
    if rnn not in RNN_LAYERS:
        raise BackboneError(f"backbone.kwargs.rnn {rnn!r}: use one of {', '.join(RNN_LAYERS)}")
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens,
        output_sequence_length=sequence_length,
        standardize=standardize,
        vocabulary=vocabulary,
        name="text_vectorization",
    )
    if vocabulary is None:
        if train_texts is None or not len(train_texts):
            raise BackboneError(
                "text_rnn learns its vocabulary from the training texts, and none were given"
            )
        vectorizer.adapt(np.asarray([str(t) for t in train_texts], dtype=object), batch_size=256)
    vocab_size = vectorizer.vocabulary_size()
    token_ids = keras.Input((sequence_length,), dtype="int64", name="token_ids")
    embedding = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")
    recurrent = keras.layers.Bidirectional(
        RNN_LAYERS[rnn](units, dropout=dropout), name=f"bidirectional_{rnn}"
    )
    features = recurrent(embedding(token_ids))
    model = keras.Model(token_ids, features, name=f"text_rnn_{rnn}")
    return Backbone(
        name="text_rnn",
        model=model,
        groups={"embeddings": [embedding], "rnn": [recurrent]},
        preprocessor=vectorizer,
        info={
            "source": "text_rnn",
            "sequence_length": sequence_length,
            "vocabulary_size": vocab_size,
            "features": 2 * units,
            "config": {
                "max_tokens": max_tokens,
                "rnn": rnn,
                "units": units,
                "embedding_dim": embedding_dim,
                "dropout": dropout,
                "standardize": standardize,
            },
        },
    )
