"""CIFAR-style ResNets for small images (28-64 px): 3x3 stem, no max-pool, three stages.

ImageNet families downsample by 32, so a 32 px input is a 1x1 map before their last blocks. These
downsample by 4 (stages at strides 1, 2, 2): a 28 px image ends as a 7x7 map. Pre-activation basic
blocks (He et al. 2016, "Identity Mappings"); the wide variants follow Zagoruyko & Komodakis 2016.
`resnet8_wide` downsamples in its first stage too (strides 2, 2, 2: 28 px ends as 4x4), which
buys twice the width for less CPU per image than resnet8 (BENCHMARKS.md, "Small images").
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from tltk.backbones.applications import TF_SCALING, load_weights_file
from tltk.backbones.base import BackboneError, ImageBackbone, ImageBackboneSpec, register
from tltk.backbones.groups import group_layers, stage_from


@dataclass(frozen=True)
class SmallResNetArch:
    blocks_per_stage: int
    widths: tuple[int, int, int]
    stem_width: int = 16
    strides: tuple[int, int, int] = (1, 2, 2)
    """Of each stage's first block; the stem keeps the input size."""

    @property
    def total_stride(self) -> int:
        return self.strides[0] * self.strides[1] * self.strides[2]


PRESETS = {
    "resnet20": SmallResNetArch(blocks_per_stage=3, widths=(16, 32, 64)),
    "resnet56": SmallResNetArch(blocks_per_stage=9, widths=(16, 32, 64)),
    "wide_resnet_16_4": SmallResNetArch(blocks_per_stage=2, widths=(64, 128, 256)),
    # Narrow and shallow: the fastest member, for CPU budgets of a few minutes.
    "resnet8": SmallResNetArch(blocks_per_stage=1, widths=(16, 32, 64)),
    # resnet8 at twice the width, downsampling from the first stage on: the wide stages run on
    # maps a quarter the size, so a train step costs less CPU than resnet8's (measured).
    "resnet8_wide": SmallResNetArch(blocks_per_stage=1, widths=(32, 64, 128), strides=(2, 2, 2)),
}


def _bn(name: str, momentum: float) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-5, name=name)


def _conv(filters: int, stride: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _block(x, filters: int, stride: int, prefix: str, momentum: float):
    """Pre-activation basic block; a 1x1 projection where the shape changes."""
    pre = keras.layers.ReLU(name=f"{prefix}_preact_relu")(_bn(f"{prefix}_preact_bn", momentum)(x))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, name=f"{prefix}_proj"
        )(pre)
    y = _conv(filters, stride, f"{prefix}_conv1")(pre)
    y = keras.layers.ReLU(name=f"{prefix}_relu")(_bn(f"{prefix}_bn", momentum)(y))
    y = _conv(filters, 1, f"{prefix}_conv2")(y)
    return keras.layers.Add(name=f"{prefix}_add")([shortcut, y])


def build_small_resnet(
    spec: ImageBackboneSpec,
    weights: str | None,
    image_size: int,
    *,
    bn_momentum: float = 0.9,
) -> ImageBackbone:
    """Build a preset of `PRESETS`; groups stem, block1..3 (one per stage), top.

    Args:
        weights: none (from scratch), a .weights.h5 file or a tltk run folder holding
            backbone.weights.h5. There are no ImageNet weights for this family.
        image_size: input side in pixels (default 32); at least 8.
        bn_momentum: 0.9 by default, since 0.99 barely moves in the few hundred steps of
            a small-data run from scratch.

    Example:
        >>> bb = lookup("resnet20").build(None, 32)
        >>> list(bb.groups)
        ['stem', 'block1', 'block2', 'block3', 'top']
    """
    return build_arch(
        PRESETS[spec.name], spec.name, image_size, weights=weights, bn_momentum=bn_momentum
    )


def build_arch(
    arch: SmallResNetArch,
    name: str,
    image_size: int,
    *,
    weights: str | None = None,
    bn_momentum: float = 0.9,
) -> ImageBackbone:
    """The backbone of any depth, widths and strides, registered or not (a preset is one
    `arch`; benchmarks/bench_small_images.py --arch measures others before one becomes a
    preset). Same groups, weights and input contract as the presets.

    Example:
        >>> arch = SmallResNetArch(blocks_per_stage=1, widths=(48, 96, 192), stem_width=24,
        ...                        strides=(2, 2, 2))
        >>> build_arch(arch, "resnet8_w48", 28).model.output.shape
        (None, 192)
    """
    size = image_size
    if size < 2 * arch.total_stride:
        raise BackboneError(
            f"backbone.image_size {size}: {name} needs at least {2 * arch.total_stride} px"
        )
    inputs = keras.Input((size, size, 3), name="pixels")
    x = _conv(arch.stem_width, 1, "stem_conv")(inputs)
    for stage, filters in enumerate(arch.widths, start=1):
        for i in range(arch.blocks_per_stage):
            stride = arch.strides[stage - 1] if i == 0 else 1
            x = _block(x, filters, stride, f"block{stage}_unit{i + 1}", bn_momentum)
    x = keras.layers.ReLU(name="top_relu")(_bn("top_bn", bn_momentum)(x))
    features = keras.layers.GlobalAveragePooling2D(name="top_pool")(x)
    model = keras.Model(inputs, features, name=name)
    # One group per stage: the unit prefix names it; the stem conv precedes block1.
    groups = group_layers(
        model.layers, stage_from([(r"^block(\d)_", "block{0}"), (r"^top_", "top")])
    )
    local = None
    if weights not in (None, "none"):
        local = load_weights_file(model, weights, name)
    return ImageBackbone(
        name=name,
        model=model,
        groups=groups,
        image_size=size,
        normalization=TF_SCALING.layers(),
        info={"family": "small_resnet", "source": "tltk", "weights": local},
    )


for _name, _arch in PRESETS.items():
    register(
        ImageBackboneSpec(
            name=_name,
            family="small_resnet",
            default_size=32,
            builder=build_small_resnet,
            # Per-channel statistics differ per dataset: map 0..255 to -1..1, BatchNorm does
            # the rest.
            normalization=TF_SCALING,
            total_stride=_arch.total_stride,
        )
    )
