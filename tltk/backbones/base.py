"""The backbone contract, the specs of registered backbones, and the name registry.

A backbone is a functional `keras.Model` that returns features, plus ordered, named layer groups
(stem, block1, ..., top) that phases freeze and unfreeze by name — never by layer index. An
`ImageBackbone` takes 0..255 pixels through its `normalization` layers; a `TextBackbone` takes
the token inputs its `preprocessor` (the tokenizer) makes from raw strings.

A registered name has a spec: `ImageBackboneSpec` (family, default size, total stride, pixel
normalisation, pretrained weights it has) or `TextBackboneSpec`, each with a `build` method.
KerasHub presets (any name, hf://, kaggle://, a folder) are not registered; tltk.backbones.hub
and tltk.backbones.hub_text build them.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import keras


class BackboneError(ValueError):
    """A backbone that cannot be built or loaded; the message says what was asked and the fix."""


@dataclass(kw_only=True)
class Backbone:
    name: str
    model: keras.Model
    """The feature extractor."""
    groups: dict[str, list[keras.layers.Layer]]
    """Ordered from input to output. Every weight-bearing layer is in exactly one group."""
    info: dict[str, Any] = field(default_factory=dict)
    """What it is, JSON-able (family, source, weights, ...), for people; never read back."""

    modality: ClassVar[str]

    def inputs_and_features(self) -> tuple[Any, Any]:
        """The task model's inputs, and the features the head is put on."""
        raise NotImplementedError


@dataclass(kw_only=True)
class ImageBackbone(Backbone):
    image_size: int
    normalization: list[keras.layers.Layer] = field(default_factory=list)
    """Layers mapping images in 0..255 to the backbone's input range; part of the exported model."""

    modality: ClassVar[str] = "image"

    def inputs_and_features(self) -> tuple[Any, Any]:
        """Images float32 [N, S, S, 3] in 0..255 -> normalization -> the backbone's features."""
        inputs = keras.Input((self.image_size, self.image_size, 3), name="images")
        x = inputs
        for layer in self.normalization:
            x = layer(x)
        return inputs, self.model(x)


@dataclass(kw_only=True)
class TextBackbone(Backbone):
    """A text backbone: the tokenizer is outside the model (it runs in tf.data, and inside the
    exported serving signature), so its inputs are the token tensors."""

    preprocessor: Any
    """The tokenizer: a batch of raw strings [N] -> the model's inputs."""
    sequence_length: int

    modality: ClassVar[str] = "text"
    asset_type: ClassVar[str]
    """`type` in a run's text_backbone/tltk_text.json: which class `restore`s it."""

    def inputs_and_features(self) -> tuple[Any, Any]:
        return self.model.input, self.model.output

    def save_assets(self, folder: Path) -> dict:
        """Write into `folder` what rebuilding this backbone offline needs besides the run's
        model weights (tokenizer, vocabulary, config); returns what `restore` reads back."""
        raise NotImplementedError

    @classmethod
    def restore(cls, folder: Path, meta: dict) -> TextBackbone:
        """The backbone `save_assets` wrote into `folder`, with random weights (the caller
        loads the run's model weights next)."""
        raise NotImplementedError


def set_bn_momentum(backbone: Backbone, momentum: float | None) -> Backbone:
    """Every BatchNormalization of the backbone at `momentum` (`backbone.bn_momentum`)."""
    if momentum is not None:
        from tltk.compat import sublayers

        for layer in sublayers(backbone.model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = momentum
    return backbone


def cut_after(backbone: ImageBackbone, group: str | None) -> ImageBackbone:
    """The backbone ended after `group` (`backbone.features_from`): its model outputs that
    group's last layer (the same layers and weights), and the later groups are gone."""
    if group is None:
        return backbone
    names = list(backbone.groups)
    if group not in names:
        raise BackboneError(
            f"backbone.features_from: {group!r} is not a group of {backbone.name}; its groups, "
            f"input to output: {', '.join(names)}"
        )
    if group == names[-1]:
        return backbone
    kept = {name: backbone.groups[name] for name in names[: names.index(group) + 1]}
    output = kept[group][-1].output
    model = keras.Model(backbone.model.input, output, name=f"{backbone.model.name}_to_{group}")
    info = {**backbone.info, "features_from": group}
    return dataclasses.replace(backbone, model=model, groups=kept, info=info)


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class PixelNormalization:
    """What a backbone's input wants: pixels x in 0..255 -> (x * scale - mean) / std, per
    channel when mean and std are triples (timm's mean/std, with the 0..1 scale named).

    Example: ImageNet statistics as torchvision trained with them:
        PixelNormalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    """

    scale: float = 1.0
    mean: float | tuple[float, float, float] = 0.0
    std: float | tuple[float, float, float] = 1.0

    def layers(self) -> list[keras.layers.Layer]:
        """The one layer doing it (named `normalize`), to put in front of the backbone."""
        if isinstance(self.mean, tuple) or isinstance(self.std, tuple):
            mean = [m / self.scale for m in _per_channel(self.mean)]
            std = [s / self.scale for s in _per_channel(self.std)]
            variance = [s**2 for s in std]
            return [keras.layers.Normalization(mean=mean, variance=variance, name="normalize")]
        scale, offset = self.scale / self.std, -self.mean / self.std
        return [keras.layers.Rescaling(scale, offset=offset, name="normalize")]


def _per_channel(value: float | tuple[float, ...]) -> tuple[float, ...]:
    return value if isinstance(value, tuple) else (value,) * 3


@dataclass(frozen=True)
class ImageBackboneSpec:
    """A registered image backbone, before it is built."""

    name: str
    family: str
    default_size: int
    builder: Callable[..., ImageBackbone]
    """builder(spec, weights, image_size, **kwargs), with image_size resolved."""
    normalization: PixelNormalization | None
    """Pixels 0..255 -> the network's input; None: the network does it itself."""
    total_stride: int = 32
    """How much the network downsamples: inputs this small or smaller collapse to 1x1."""
    pretrained: tuple[str, ...] = ()
    """Named weights it has, e.g. ("imagenet",); `none` and a weights file always work."""

    modality: ClassVar[str] = "image"

    def build(
        self, weights: str | None = None, image_size: int | None = None, **kwargs
    ) -> ImageBackbone:
        """`weights`: None, a name in `pretrained`, or a weights file / tltk run folder."""
        if weights == "imagenet" and "imagenet" not in self.pretrained:
            raise BackboneError(
                f"backbone.weights: {self.name} has no ImageNet weights; set `weights: none` to "
                "train from scratch, or a .weights.h5 file / run folder from an earlier tltk run"
            )
        return self.builder(self, weights, image_size or self.default_size, **kwargs)

    def normalization_layers(self) -> list[keras.layers.Layer]:
        return self.normalization.layers() if self.normalization else []


@dataclass(frozen=True)
class TextBackboneSpec:
    """A registered text backbone (KerasHub text presets are found by name, not registered)."""

    name: str
    family: str
    builder: Callable[..., TextBackbone]
    """builder(weights, *, sequence_length, train_texts, **kwargs)."""

    modality: ClassVar[str] = "text"

    def build(
        self, weights: str | None = None, *, sequence_length: int = 128, train_texts=None, **kwargs
    ) -> TextBackbone:
        """`train_texts`: the training split's texts, for a backbone that learns a vocabulary."""
        return self.builder(
            weights, sequence_length=sequence_length, train_texts=train_texts, **kwargs
        )


BackboneSpec = ImageBackboneSpec | TextBackboneSpec

_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def register_image_backbone(name: str, **fields) -> Callable:
    """Decorator: register `builder(spec, weights, image_size, **kwargs)` as an
    `ImageBackboneSpec` with `fields` (family, default_size, normalization, ...)."""

    def wrap(builder: Callable[..., ImageBackbone]) -> Callable[..., ImageBackbone]:
        register(ImageBackboneSpec(name=name, builder=builder, **fields))
        return builder

    return wrap


def register_text_backbone(name: str, *, family: str) -> Callable:
    """Decorator: register `builder(weights, *, sequence_length, train_texts, **kwargs)`."""

    def wrap(builder: Callable[..., TextBackbone]) -> Callable[..., TextBackbone]:
        register(TextBackboneSpec(name=name, family=family, builder=builder))
        return builder

    return wrap


def registered(modality: str | None = None) -> dict[str, BackboneSpec]:
    """Registered names (of one modality, or all) and their specs."""
    return {n: s for n, s in _REGISTRY.items() if modality in (None, s.modality)}


def lookup(name: str) -> BackboneSpec | None:
    return _REGISTRY.get(name.lower().replace("-", "_"))


def unknown_name_error(name: str, extra: list[str] = ()) -> BackboneError:
    names = sorted(_REGISTRY) + list(extra)
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return BackboneError(
        f"backbone.name: unknown backbone {name!r}.{hint} Registered names: "
        f"{', '.join(sorted(_REGISTRY))}; KerasHub presets are accepted as a built-in preset "
        "name, hf://..., kaggle://... or a local preset folder (`tltk backbones` lists them)."
    )
