"""KerasHub image backbones: built-in preset names, hf://, kaggle:// or a local preset folder."""

from __future__ import annotations

from pathlib import Path

import keras

from tltk.backbones.base import BackboneError, ImageBackbone
from tltk.backbones.groups import chunk_groups, group_layers, stage_from
from tltk.net import require_network

_REMOTE = {"hf://": "huggingface.co", "kaggle://": "www.kaggle.com"}

# Stage names used across KerasHub vision backbones (ResNet stack<i>, EfficientNet block<i>,
# ViT/DINO transformer layers, ConvNeXt-style stage<i>).
_hub_group_of = stage_from(
    [
        (r"(stem|conv1_|pool1_|embedding|patch|^input_conv)", "stem"),
        (r"stack(\d+)_", "block{0+1}"),
        (r"stage_?(\d+)", "block{0+1}"),
        (r"(?:transformer|encoder)_(?:layer|block)_(\d+)", "block{0+1}"),
        (r"^block(\d+)", "block{0}"),
        (r"(^post_|final_norm|^top_|layer_norm$|_norm$)", "top"),
    ]
)


def is_hub_preset(name: str) -> bool:
    """True for hf://, kaggle://, a local folder with config.json, or a built-in preset name."""
    if any(name.startswith(prefix) for prefix in _REMOTE) or (Path(name) / "config.json").is_file():
        return True
    import keras_hub

    return name in keras_hub.models.Backbone.presets


def fetch_check(preset: str) -> None:
    """Remote presets: fail within seconds when their host cannot be reached."""
    import keras_hub

    for prefix, host in _REMOTE.items():
        if preset.startswith(prefix) or (
            preset in keras_hub.models.Backbone.presets and prefix == "kaggle://"
        ):
            require_network(
                host,
                what=f"the KerasHub preset {preset!r}",
                fix="Download the preset where you have a network (keras_hub "
                "`Backbone.from_preset(...).save_to_preset(DIR)`, or `huggingface-cli download`) "
                "and set `backbone.name` to that local folder: /path/to/DIR.",
            )
            return


def build_hub_image(
    preset: str, weights: str | None, image_size: int | None, **kwargs
) -> ImageBackbone:
    import keras_hub

    if weights not in (None, "imagenet", "preset"):
        if not (Path(weights) / "config.json").is_file():
            raise BackboneError(
                f"backbone.weights: {weights!r} is not a KerasHub preset folder (no config.json)."
            )
        preset = weights  # a local copy of the preset's weights
    if not Path(preset).is_dir():
        fetch_check(preset)
    try:
        model = keras_hub.models.Backbone.from_preset(
            preset, load_weights=weights is not None, **kwargs
        )
    except (OSError, ValueError) as e:
        raise BackboneError(
            f"backbone.name: could not load KerasHub preset {preset!r}: {e}"
        ) from None
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(
            preset, image_size=(image_size, image_size) if image_size else None
        )
    except (ValueError, OSError, FileNotFoundError):
        converter = None
    if image_size is None:
        size = getattr(converter, "image_size", None) or (224, 224)
        image_size = int(size[0])
        if converter is not None:
            converter.image_size = (image_size, image_size)
    normalization = [converter] if converter is not None else [keras.layers.Rescaling(1 / 255.0)]
    groups = group_layers(model.layers, _hub_group_of)
    if len(groups) < 3:  # names carry no stages: split evenly so top:K still means something
        groups = chunk_groups(model.layers, 6)
    return ImageBackbone(
        name=preset,
        model=model,
        groups=groups,
        image_size=image_size,
        normalization=normalization,
        info={"source": "keras_hub", "class": type(model).__name__, "preset": preset},
    )
