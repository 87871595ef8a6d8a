"""Backbones by name: keras.applications families, small-image ResNets, EfficientNet-Lite0,
`text_rnn` and KerasHub presets (image and text), each with named layer groups."""

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
    ImageBackbone,
    ImageBackboneSpec,
    PixelNormalization,
    TextBackbone,
    TextBackboneSpec,
    cut_after,
    lookup,
    registered,
    set_bn_momentum,
    unknown_name_error,
)
from tltk.recipe import BackboneConfig

__all__ = [
    "Backbone",
    "BackboneError",
    "BackboneSpec",
    "ImageBackbone",
    "ImageBackboneSpec",
    "PixelNormalization",
    "TextBackbone",
    "TextBackboneSpec",
    "build_backbone",
    "build_image_backbone",
    "cut_after",
    "list_backbones",
    "lookup",
    "registered",
]


def build_image_backbone(cfg: BackboneConfig) -> ImageBackbone:
    """The image backbone a recipe names: a registered name, else a KerasHub image preset."""
    spec = lookup(cfg.name)
    if spec is not None and spec.modality != "image":
        raise BackboneError(
            f"backbone.name {cfg.name!r} is a {spec.modality} backbone; set `modality: "
            f"{spec.modality}` for a {spec.modality} run, or name an image backbone"
        )
    if spec is not None:
        backbone = spec.build(cfg.weights, cfg.image_size, **cfg.kwargs)
    else:
        from tltk.backbones import hub

        if not hub.is_hub_preset(cfg.name):
            raise unknown_name_error(cfg.name)
        backbone = hub.build_hub_image(cfg.name, cfg.weights, cfg.image_size, **cfg.kwargs)
    return set_bn_momentum(cut_after(backbone, cfg.features_from), cfg.bn_momentum)


def build_backbone(cfg: BackboneConfig, *, modality: str = "image", train_texts=None) -> Backbone:
    """Build the backbone a recipe names, with its weights, groups and preprocessing.

    `train_texts` (text) lets a from-scratch backbone learn its vocabulary.
    """
    if modality == "image":
        return build_image_backbone(cfg)
    if modality == "text":
        if cfg.features_from is not None:
            raise BackboneError(
                "backbone.features_from is for image backbones; remove it from this text recipe"
            )
        from tltk.backbones import text  # keras_hub's import is slow: only for text runs

        return text.build_text_backbone(cfg, train_texts=train_texts, **cfg.kwargs)
    raise BackboneError(f"no backbones for modality {modality!r}: image or text")


def list_backbones(with_params: bool = True) -> list[dict]:
    """Registered names with family, modality, default input size (image) and, optionally,
    parameter count and groups (image: text backbones need their data to be built)."""
    rows = []
    for name, spec in sorted(registered().items()):
        row = {"name": name, "family": spec.family, "modality": spec.modality}
        if isinstance(spec, ImageBackboneSpec):
            row["input_size"] = spec.default_size
            if with_params:
                bb = spec.build(None)
                row["params"] = bb.model.count_params()
                row["groups"] = list(bb.groups)
        rows.append(row)
    return rows
