"""keras.applications families as tltk backbones, each with named stage groups."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras

from tltk.backbones.base import (
    BackboneError,
    ImageBackbone,
    ImageBackboneSpec,
    PixelNormalization,
    register,
)
from tltk.backbones.groups import group_layers, stage_from, warn_if_collapsed

TF_SCALING = PixelNormalization(scale=1 / 127.5, mean=1.0, std=1.0)
"""x / 127.5 - 1: the "tf" mode of keras.applications' preprocess_input."""
IMAGENET_TORCH = PixelNormalization(
    scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)
"""x / 255, then ImageNet's mean and std per channel: the "torch" mode."""


@dataclass(frozen=True)
class KerasApplication:
    """One keras.applications constructor as a tltk backbone."""

    constructor: str
    """The keras.applications class, e.g. `MobileNetV3Small`."""
    family: str
    """Names its group rule in `GROUP_RULES`."""
    default_size: int = 224
    normalization: PixelNormalization | None = None
    """None: the application rescales 0..255 itself (built with include_preprocessing=True)."""


APPLICATIONS = {
    "mobilenet_v3_small": KerasApplication("MobileNetV3Small", "mobilenet_v3"),
    "mobilenet_v3_large": KerasApplication("MobileNetV3Large", "mobilenet_v3"),
    "efficientnet_v2_b0": KerasApplication("EfficientNetV2B0", "efficientnet_v2"),
    "efficientnet_v2_b1": KerasApplication("EfficientNetV2B1", "efficientnet_v2", 240),
    "efficientnet_v2_b2": KerasApplication("EfficientNetV2B2", "efficientnet_v2", 260),
    "efficientnet_v2_b3": KerasApplication("EfficientNetV2B3", "efficientnet_v2", 300),
    "resnet50_v2": KerasApplication("ResNet50V2", "resnet_v2", normalization=TF_SCALING),
    "convnext_tiny": KerasApplication("ConvNeXtTiny", "convnext"),
    "densenet121": KerasApplication("DenseNet121", "densenet", normalization=IMAGENET_TORCH),
}
TOTAL_STRIDE = 32
"""Every family here downsamples by 32."""


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


_STAGE_RULES = {
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


def _by_stage(group_of: Callable[[str], str | None]) -> Callable[[keras.Model], dict]:
    return lambda model: group_layers(model.layers, group_of)


GROUP_RULES: dict[str, Callable[[keras.Model], dict]] = {
    "mobilenet_v3": _mobilenet_v3_groups,
    **{family: _by_stage(group_of) for family, group_of in _STAGE_RULES.items()},
}
"""family -> model -> its groups."""


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


def build_application(
    app: KerasApplication, spec: ImageBackboneSpec, weights: str | None, size: int, **kwargs
) -> ImageBackbone:
    """`weights`: None, "imagenet" (Keras' download) or a weights file / tltk run folder."""
    name = spec.name
    warn_if_collapsed(name, size, spec.total_stride)
    local = None
    if weights not in (None, "imagenet"):
        local, weights = resolve_weights_path(weights, name), None
    model = _construct(app, name, weights, size, kwargs)
    if local is not None:
        try:
            model.load_weights(local)
        except Exception as e:
            raise BackboneError(
                f"backbone.weights: {local} does not fit {name} at {size}px: {e}"
            ) from None
    return ImageBackbone(
        name=name,
        model=model,
        groups=GROUP_RULES[app.family](model),
        image_size=size,
        normalization=spec.normalization_layers(),
        info={"family": app.family, "source": "keras.applications", "weights": local or weights},
    )


def _construct(app: KerasApplication, name: str, weights: str | None, size: int, kwargs: dict):
    builtin = {"include_preprocessing": True} if app.normalization is None else {}
    constructor = getattr(keras.applications, app.constructor)
    try:
        return constructor(
            include_top=False, weights=weights, input_shape=(size, size, 3), **builtin, **kwargs
        )
    except Exception as e:  # keras raises plain Exception on a failed download
        if weights == "imagenet" and ("fetch" in str(e).lower() or "url" in str(e).lower()):
            raise BackboneError(
                f"backbone.weights: could not download ImageNet weights for {name} "
                f"({app.constructor}): {str(e).splitlines()[0][:200]}. Without a network, "
                "download the *_notop.h5 file elsewhere and set `backbone.weights: "
                "/path/to/file.h5`, or set `backbone.weights: none` to train from scratch."
            ) from None
        raise


for _name, _app in APPLICATIONS.items():
    register(
        ImageBackboneSpec(
            name=_name,
            family=_app.family,
            default_size=_app.default_size,
            builder=partial(build_application, _app),
            normalization=_app.normalization,
            total_stride=TOTAL_STRIDE,
            pretrained=("imagenet",),
        )
    )
