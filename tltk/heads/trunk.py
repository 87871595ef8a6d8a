"""The layers every head shares: pooling, optional hidden layer, dropout, the scores layer.

The scores layer's activation and width come from the task type's `HeadSpec`. Always float32.
"""

from __future__ import annotations

import keras

from tltk.heads import HEAD_PREFIX, get_head
from tltk.recipe import HeadConfig

POOLED_LAYER = f"{HEAD_PREFIX}cast"
"""The head layer whose output is the pooled float32 feature vector [B, C] every later head
layer starts from: where a head trained on cached features (tltk/features.py) is cut off."""
SCORES_LAYER = f"{HEAD_PREFIX}scores"
"""The last head layer: scores = activation(features @ kernel + bias)."""


def build_head(features: keras.KerasTensor, cfg: HeadConfig, num_outputs: int) -> keras.KerasTensor:
    """Pool backbone features and map them to scores.

    Feature maps [B,H,W,C] are pooled; sequences [B,T,C] use their first (CLS) token; vectors
    pass through. Every head layer is named `head_*` (that is the `head` group) and computes in
    float32 so mixed precision never rounds the scores or the loss.
    """
    reg = keras.regularizers.L1L2(l1=cfg.l1, l2=cfg.l2) if (cfg.l1 or cfg.l2) else None
    x = features
    if len(x.shape) == 4:
        pool = (
            keras.layers.GlobalAveragePooling2D
            if cfg.pooling == "avg"
            else keras.layers.GlobalMaxPooling2D
        )
        x = pool(name=f"{HEAD_PREFIX}pool", dtype="float32")(x)
    elif len(x.shape) == 3:
        x = keras.layers.Lambda(
            lambda t: t[:, 0, :], name=f"{HEAD_PREFIX}cls_token", dtype="float32"
        )(x)
    x = keras.layers.Activation("linear", dtype="float32", name=POOLED_LAYER)(x)
    if cfg.hidden_units:
        if cfg.dropout:
            x = keras.layers.Dropout(
                cfg.dropout, name=f"{HEAD_PREFIX}dropout_hidden", dtype="float32"
            )(x)
        x = keras.layers.Dense(
            cfg.hidden_units,
            activation="relu",
            kernel_regularizer=reg,
            dtype="float32",
            name=f"{HEAD_PREFIX}hidden",
        )(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name=f"{HEAD_PREFIX}dropout", dtype="float32")(x)
    return keras.layers.Dense(
        num_outputs,
        activation=get_head(cfg.type).activation,
        kernel_regularizer=reg,
        dtype="float32",
        name=SCORES_LAYER,
    )(x)


def head_loss(cfg: HeadConfig) -> keras.losses.Loss:
    """The loss of `cfg.type`'s spec, with the config's label smoothing."""
    return get_head(cfg.type).loss(cfg)


def head_metrics(cfg: HeadConfig, num_classes: int, top_k: int = 5) -> list:
    """The metrics `compile` gets for `cfg.type` (`num_classes`: the scores' width)."""
    return get_head(cfg.type).metrics(num_classes, top_k)
