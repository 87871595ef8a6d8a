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
    """The backbone's inputs (images float32 [N,S,S,3] in 0..255, or a text backbone's token
    inputs) -> scores.

    An image backbone's normalisation is inside the model, so exported models take raw pixels.
    """
    inputs, features = backbone.inputs_and_features()
    outputs = build_head(features, head, num_outputs)
    model = keras.Model(inputs, outputs, name=name)
    head_layers = [la for la in model.layers if la.name.startswith(HEAD_PREFIX)]
    groups = dict(backbone.groups)
    groups["head"] = head_layers
    return TaskModel(model, backbone, groups)
