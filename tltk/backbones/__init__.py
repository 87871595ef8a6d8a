"""Backbones by name: keras.applications families and KerasHub presets, with named layer groups."""

from __future__ import annotations

from tltk.backbones import (  # noqa: F401  (register the families)
    applications,
    efficientnet_lite,
    small_resnet,
    text_rnn,
)
from tltk.backbones.base import (
    Backbone,
    BackboneError,
    BackboneSpec,
    register_backbone,
    registered,
    unknown_name_error,
)
from tltk.recipe import BackboneConfig

__all__ = [
    "Backbone",
    "BackboneError",
    "BackboneSpec",
    "build_backbone",
    "list_backbones",
    "register_backbone",
]


def build_backbone(cfg: BackboneConfig, *, task: str = "image", train_texts=None) -> Backbone:
    """Build the backbone a recipe names, with its weights, groups and preprocessing.

    `train_texts` (text task) lets a from-scratch backbone learn its vocabulary.
    """
    from tltk.backbones.base import lookup

    kwargs = dict(cfg.kwargs)
    if task == "text":
        from tltk.backbones import text  # keras_hub's import is slow: only for text runs

        backbone = text.build_text_backbone(cfg, train_texts=train_texts, **kwargs)
    elif (spec := lookup(cfg.name)) is not None:
        backbone = spec.build(cfg.weights, cfg.image_size, **kwargs)
    else:
        from tltk.backbones import hub

        if not hub.is_hub_preset(cfg.name):
            raise unknown_name_error(cfg.name)
        backbone = hub.build_hub_image(cfg.name, cfg.weights, cfg.image_size, **kwargs)
    if cfg.bn_momentum is not None:
        import keras

        from tltk.compat import sublayers

        for layer in sublayers(backbone.model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = cfg.bn_momentum
    return backbone


def list_backbones(with_params: bool = True) -> list[dict]:
    """Registered names with family, default input size and (optionally) parameter count."""
    rows = []
    for name, spec in sorted(registered().items()):
        row = {"name": name, "family": spec.family, "input_size": spec.default_size}
        if with_params and spec.family != "text":
            bb = spec.build(None, spec.default_size)
            row["params"] = bb.model.count_params()
            row["groups"] = list(bb.groups)
        rows.append(row)
    return rows
