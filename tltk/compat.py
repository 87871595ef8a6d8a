"""The private Keras APIs tltk relies on, in one place (tests/test_compat.py fails when they
change).

Keras 3 has no public way to walk a layer's nested sublayers (a KerasHub transformer layer's
attention projections, a BatchNormalization inside a nested block), nor to ask an optimizer
which slot a variable has inside `update_step` (under a distribution strategy the variable
there may be a per-replica component, so its path is not a safe key). Each is wrapped here
once; nothing else in tltk touches a private attribute of keras or keras_hub.
"""

from __future__ import annotations

import keras


def sublayers(layer: keras.layers.Layer, *, include_self: bool = True) -> list[keras.layers.Layer]:
    """`layer` (with `include_self`) and every layer nested in it, at any depth, each once."""
    return layer._flatten_layers(include_self=include_self, recursive=True)


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """The position of `variable` in the list the optimizer was built with (inside
    `update_step`, under any distribution strategy)."""
    return optimizer._get_variable_index(variable)
