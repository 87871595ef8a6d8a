"""The layers and groups of KerasHub text backbones: CLS / masked-mean pooling, and the
`embeddings`, `layer_0` .. `layer_{N-1}`, `pooler`/`top` groups (or, with LoRA, only the
adapted projections of each encoder layer)."""

from __future__ import annotations

import re

import keras

from tltk.backbones.base import BackboneError
from tltk.compat import sublayers


class TokenPooling(keras.layers.Layer):
    """The hidden state of one token (the CLS token) of a [B, T, C] sequence: [B, C]."""

    def __init__(self, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, sequence):
        return sequence[:, self.index, :]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


class MaskedMeanPooling(keras.layers.Layer):
    """The mean over real (non-padding) tokens: what sentence-embedding models were trained on."""

    def call(self, sequence, padding_mask):
        mask = keras.ops.cast(padding_mask, sequence.dtype)[..., None]
        total = keras.ops.sum(sequence * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


_ENCODER_LAYER = [
    re.compile(r"^group_(\d+)_inner_layer_\d+$"),  # ALBERT: shared layers per group
    re.compile(r"_layer_(\d+)$"),  # transformer_layer_3, f_net_layer_3, ..._encoder_layer_3
]


def _encoder_index(name: str) -> int | None:
    for rx in _ENCODER_LAYER:
        m = rx.search(name)
        if m:
            return int(m.group(1))
    return None


def layer_groups(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """embeddings, layer_0 .. layer_{N-1}, then pooler (pooled_dense) / top, in graph order.

    Layers without weights join the group before them, so no group is weightless.
    """
    groups: dict[str, list[keras.layers.Layer]] = {}
    current, seen_encoder = "embeddings", False
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        index = _encoder_index(layer.name)
        if index is not None:
            current, seen_encoder = f"layer_{index}", True
        elif "pool" in layer.name and layer.weights:
            current = "pooler"
        elif seen_encoder and layer.weights and not current.startswith(("pooler", "top")):
            current = "top"
        groups.setdefault(current, []).append(layer)
    return groups


def lora_groups(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """Per encoder layer, only its LoRA-enabled projections (everything else stays frozen)."""
    groups = {}
    for name, layers in layer_groups(model).items():
        adapted = [
            sub
            for layer in layers
            for sub in sublayers(layer)
            if getattr(sub, "lora_enabled", False)
        ]
        if adapted:
            groups[name] = adapted
    if not groups:
        raise BackboneError("backbone.lora_rank: the backbone has no LoRA-capable layers")
    return groups
