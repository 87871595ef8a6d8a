"""Group rules: how a backbone's layers become its ordered, named groups (stem, block1, ...,
top), and the warning for inputs too small for a family's downsampling."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import keras


def group_layers(
    layers: list[keras.layers.Layer], group_of: Callable[[str], str | None]
) -> dict[str, list[keras.layers.Layer]]:
    """Assign each layer to `group_of(layer.name)`; None inherits the previous layer's group.

    Generic names (activation_3, re_lu, zero_padding2d) carry no stage, so they belong where
    they stand in the graph. Input layers are skipped.
    """
    groups: dict[str, list[keras.layers.Layer]] = {}
    current = "stem"
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        current = group_of(layer.name) or current
        groups.setdefault(current, []).append(layer)
    return groups


def chunk_groups(layers: list[keras.layers.Layer], n: int) -> dict[str, list[keras.layers.Layer]]:
    """Fallback grouping for unknown architectures: stem, block1..n-2, top by weight order."""
    layers = [la for la in layers if not isinstance(la, keras.layers.InputLayer)]
    weighted = [i for i, la in enumerate(layers) if la.weights]
    if len(weighted) < 3:
        return {"stem": layers}
    n = max(3, min(n, len(weighted)))
    cuts = [weighted[round(k * len(weighted) / n)] for k in range(1, n)]
    names = ["stem"] + [f"block{k}" for k in range(1, n - 1)] + ["top"]
    groups, start = {}, 0
    for name, end in zip(names, cuts + [len(layers)], strict=True):
        groups[name] = layers[start:end]
        start = end
    return groups


def stage_from(patterns: list[tuple[str, str]]) -> Callable[[str], str | None]:
    """Build `group_of` from (regex, template) pairs; templates may use {0},{1} from groups,
    with integer arithmetic written as e.g. `block{0+1}`."""
    compiled = [(re.compile(p), t) for p, t in patterns]

    def group_of(name: str) -> str | None:
        for rx, template in compiled:
            m = rx.search(name)
            if m:
                return _fill(template, m)
        return None

    return group_of


def _fill(template: str, match: re.Match) -> str:
    """`block{0+1}` with match group 1 == "3" -> `block4`."""
    return re.sub(
        r"\{(\d)([+-]\d+)?\}",
        lambda t: str(int(match.group(int(t.group(1)) + 1)) + int(t.group(2) or 0)),
        template,
    )


def warn_if_collapsed(name: str, image_size: int, total_stride: int) -> None:
    """Warn when `image_size` leaves the family a 1x1 (or smaller) map before its last blocks."""
    if image_size <= total_stride:
        warnings.warn(
            f"backbone {name} downsamples by {total_stride}, so a {image_size} px input "
            "collapses to a 1x1 feature map before its last blocks and its features stay weak. "
            f"Use image_size >= {2 * total_stride} for this family, or a small-image backbone "
            "(resnet20, resnet56, wide_resnet_16_4) at this size.",
            UserWarning,
            stacklevel=3,
        )
