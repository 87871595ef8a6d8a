"""keras.applications families as tltk backbones, each with named stage groups."""

from __future__ import annotations

import re
from pathlib import Path

import keras

from tltk.backbones.base import (
    Backbone,
    BackboneError,
    group_layers,
    register_backbone,
    stage_from,
    warn_if_collapsed,
)

# name: (keras.applications constructor, default input size, family, normalisation)
# normalisation: "builtin" (the application rescales 0..255 itself), "tf" (x/127.5 - 1),
# "torch" (x/255, then ImageNet mean/std).
_FAMILIES = {
    "mobilenet_v3_small": ("MobileNetV3Small", 224, "mobilenet_v3", "builtin"),
    "mobilenet_v3_large": ("MobileNetV3Large", 224, "mobilenet_v3", "builtin"),
    "efficientnet_v2_b0": ("EfficientNetV2B0", 224, "efficientnet_v2", "builtin"),
    "efficientnet_v2_b1": ("EfficientNetV2B1", 240, "efficientnet_v2", "builtin"),
    "efficientnet_v2_b2": ("EfficientNetV2B2", 260, "efficientnet_v2", "builtin"),
    "efficientnet_v2_b3": ("EfficientNetV2B3", 300, "efficientnet_v2", "builtin"),
    "resnet50_v2": ("ResNet50V2", 224, "resnet_v2", "tf"),
    "convnext_tiny": ("ConvNeXtTiny", 224, "convnext", "builtin"),
    "densenet121": ("DenseNet121", 224, "densenet", "torch"),
}

_IMAGENET_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
_IMAGENET_VAR = [(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2]


def _mobilenet_v3_groups(model: keras.Model) -> dict:
    # Blocks are expanded_conv_<i>_* (the first has no index). A stage starts at each block that
    # downsamples (it has a depthwise padding layer), so groups follow the feature resolutions.
    block_rx = re.compile(r"^expanded_conv(?:_(\d+))?_")
    stride_blocks = {
        int(m.group(1) or 0)
        for la in model.layers
        if la.name.endswith("depthwise_pad") and (m := block_rx.match(la.name))
    }
    stage_of, stage = {}, 0
    for block in range(64):
        if block in stride_blocks:
            stage += 1
        stage_of[block] = max(stage, 1)

    def group_of(name: str) -> str | None:
        if name.startswith("conv_1") or name.startswith("conv_2"):
            return "top"
        m = block_rx.match(name)
        if m:
            return f"block{stage_of[int(m.group(1) or 0)]}"
        if name in ("conv", "conv_bn", "rescaling"):
            return "stem"
        return None

    return group_layers(model.layers, group_of)


_GROUP_RULES = {
    "efficientnet_v2": stage_from(
        [(r"^stem_", "stem"), (r"^block(\d+)", "block{0}"), (r"^top_", "top")]
    ),
    "resnet_v2": stage_from(
        [(r"^(conv1|pool1)_", "stem"), (r"^conv(\d)_", "block{0-1}"), (r"^post_", "top")]
    ),
    "convnext": stage_from(
        [
            (r"(prestem|_stem)", "stem"),
            (r"_stage_(\d+)_", "block{0+1}"),
            (r"_downsampling_block_(\d+)", "block{0+2}"),
            (r"^layer_normalization", "top"),
        ]
    ),
    "densenet": stage_from(
        [
            (r"^(conv1|pool1)", "stem"),
            (r"^conv(\d)_block", "block{0-1}"),
            (r"^pool(\d)_", "block{0-1}"),
            (r"^(bn|relu)$", "top"),
        ]
    ),
}


def _normalization(kind: str) -> list[keras.layers.Layer]:
    if kind == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize")]
    if kind == "torch":
        return [
            keras.layers.Normalization(
                mean=_IMAGENET_MEAN, variance=_IMAGENET_VAR, name="normalize"
            )
        ]
    return []


def resolve_weights_path(weights: str, name: str) -> str:
    """A weights file, or a tltk run folder holding `backbone.weights.h5`."""
    path = Path(weights).expanduser()
    if path.is_dir() and (path / "backbone.weights.h5").is_file():
        path = path / "backbone.weights.h5"
    if not path.is_file():
        raise BackboneError(
            f"backbone.weights: {weights!r} for {name} is neither 'imagenet', 'none' nor an "
            "existing weights file. Pass a .weights.h5/.h5 file (e.g. a run's "
            "backbone.weights.h5, or Keras' *_notop.h5 downloaded where you have a network)."
        )
    return str(path)


def load_weights_file(model: keras.Model, weights: str, name: str) -> str:
    """Load a weights file (or a run folder's backbone.weights.h5) into `model`; its path."""
    path = resolve_weights_path(weights, name)
    try:
        model.load_weights(path)
    except Exception as e:
        raise BackboneError(f"backbone.weights: {path} does not fit {name}: {e}") from None
    return path


def build_application(name: str, weights: str | None, image_size: int | None, **kwargs) -> Backbone:
    cls_name, default_size, family, norm = _FAMILIES[name]
    size = image_size or default_size
    warn_if_collapsed(name, size, 32)  # every family here downsamples by 32
    constructor = getattr(keras.applications, cls_name)
    builtin_pre = {"include_preprocessing": True} if norm == "builtin" else {}
    local = None
    if weights not in (None, "imagenet"):
        local, weights = resolve_weights_path(weights, name), None
    try:
        model = constructor(
            include_top=False,
            weights=weights,
            input_shape=(size, size, 3),
            **builtin_pre,
            **kwargs,
        )
    except Exception as e:  # keras raises plain Exception on a failed download
        if weights == "imagenet" and ("fetch" in str(e).lower() or "url" in str(e).lower()):
            raise BackboneError(
                f"backbone.weights: could not download ImageNet weights for {name} "
                f"({cls_name}): {str(e).splitlines()[0][:200]}. Without a network, download "
                f"the *_notop.h5 file elsewhere and set `backbone.weights: /path/to/file.h5`, "
                "or set `backbone.weights: none` to train from scratch."
            ) from None
        raise
    if local is not None:
        try:
            model.load_weights(local)
        except Exception as e:
            raise BackboneError(
                f"backbone.weights: {local} does not fit {name} at {size}px: {e}"
            ) from None
    if family == "mobilenet_v3":
        groups = _mobilenet_v3_groups(model)
    else:
        groups = group_layers(model.layers, _GROUP_RULES[family])
    return Backbone(
        name=name,
        model=model,
        groups=groups,
        image_size=size,
        normalization=_normalization(norm),
        info={"family": family, "source": "keras.applications", "weights": local or weights},
    )


for _name, (_cls, _size, _family, _norm) in _FAMILIES.items():
    register_backbone(_name, family=_family, default_size=_size)(
        lambda weights, image_size, _n=_name, **kw: build_application(_n, weights, image_size, **kw)
    )
