"""The backbone contract, as one check any backbone can be run through (keras-hub's
`run_backbone_test`): tests/test_backbone_contract.py runs it over every registered name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from tltk.backbones import Backbone, ImageBackbone, PixelNormalization


def check_backbone(
    backbone: Backbone,
    *,
    params: int,
    example_inputs,
    restore: Callable[[Backbone, Path], Backbone],
    tmp_path: Path,
) -> None:
    """Groups ordered input -> output and covering every weight-bearing layer exactly once; a
    forward pass giving [N, ..., features]; the parameter count; and a round trip: the
    backbone's weights saved, `restore(backbone, folder)` rebuilt with other random weights,
    the saved weights loaded, the same outputs.

    `example_inputs`: a batch as the task model takes it (raw pixels, or token inputs).
    `restore`: how a run rebuilds this kind of backbone offline (from the recipe, or from the
    assets it saved into `folder`).
    """
    check_groups(backbone)
    features = keras.Model(*backbone.inputs_and_features())
    outputs = np.asarray(features(example_inputs))
    n = len(keras.tree.flatten(example_inputs)[0])
    assert outputs.shape[0] == n and outputs.shape[-1] == backbone.model.output_shape[-1]
    assert outputs.ndim in (2, 4) and np.all(np.isfinite(outputs))
    assert backbone.model.count_params() == params, f"{backbone.name}: the golden count changed"

    weights = tmp_path / "backbone.weights.h5"
    backbone.model.save_weights(str(weights))
    keras.utils.set_random_seed(1)  # other random weights than the original's
    again = restore(backbone, tmp_path)
    assert list(again.groups) == list(backbone.groups)
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(backbone.model.weights, again.model.weights, strict=True)
    ), "the rebuilt backbone should start from other weights"
    again.model.load_weights(str(weights))
    rebuilt = keras.Model(*again.inputs_and_features())
    np.testing.assert_allclose(np.asarray(rebuilt(example_inputs)), outputs, rtol=1e-6, atol=1e-6)


def check_groups(backbone: Backbone) -> None:
    """Every weight-bearing layer in exactly one group; groups in input-to-output order (each
    group's layers come after the previous group's in the model's layer order)."""
    layers = backbone.model.layers
    position = {id(la): i for i, la in enumerate(layers)}
    grouped = [la for members in backbone.groups.values() for la in members]
    assert len(grouped) == len({id(la) for la in grouped}), "a layer in two groups"
    assert all(id(la) in position for la in grouped), "a group holds a layer the model lacks"
    missing = [la.name for la in layers if la.weights and id(la) not in map(id, grouped)]
    assert not missing, f"weight-bearing layers in no group: {missing}"
    names = list(backbone.groups)
    spans = [[position[id(la)] for la in backbone.groups[g]] for g in names]
    for i in range(1, len(names)):
        assert max(spans[i - 1]) < min(spans[i]), f"{names[i]!r} starts inside {names[i - 1]!r}"
    assert all(any(la.weights for la in g) for g in backbone.groups.values()), "a weightless group"


def check_normalization(backbone: ImageBackbone, spec: PixelNormalization | None) -> None:
    """The backbone's normalisation layers map 0..255 pixels as its spec says."""
    if spec is None:
        assert backbone.normalization == []
        return
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    x = pixels
    for layer in backbone.normalization:
        x = np.asarray(layer(x))
    mean, std = np.broadcast_to(spec.mean, 3), np.broadcast_to(spec.std, 3)
    np.testing.assert_allclose(x, (pixels * spec.scale - mean) / std, rtol=1e-5, atol=1e-5)
