"""Backbone + head -> one functional keras.Model, and the named groups phases act on."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from tltk.backbones import Backbone
from tltk.heads import HEAD_PREFIX, build_head
from tltk.recipe import HeadConfig


@dataclass
class TaskModel:
    model: keras.Model
    backbone: Backbone
    groups: dict[str, list[keras.layers.Layer]]
    """Backbone groups in order, then `head`."""

    @property
    def backbone_groups(self) -> list[str]:
        return [g for g in self.groups if g != "head"]


def build_model(
    backbone: Backbone, head: HeadConfig, num_outputs: int, *, name: str = "tltk"
) -> TaskModel:
    """Images float32 [N,S,S,3] in 0..255 (or the text backbone's token inputs) -> scores.

    The backbone's normalisation is inside the model, so exported models take raw pixels.
    """
    if backbone.image_size is not None:
        inputs = keras.Input((backbone.image_size, backbone.image_size, 3), name="images")
        x = inputs
        for layer in backbone.normalization:
            x = layer(x)
        features = backbone.model(x)
    else:
        inputs = backbone.model.input
        features = backbone.model.output
    outputs = build_head(features, head, num_outputs)
    model = keras.Model(inputs, outputs, name=name)
    head_layers = [la for la in model.layers if la.name.startswith(HEAD_PREFIX)]
    groups = dict(backbone.groups)
    groups["head"] = head_layers
    return TaskModel(model, backbone, groups)
