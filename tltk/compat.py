"""The private Keras APIs tltk relies on, in one place (tests/test_compat.py fails when they
change).

Keras 3 has no public way to walk a layer's nested sublayers (a KerasHub transformer layer's
attention projections, a BatchNormalization inside a nested block), nor to ask an optimizer
which slot a variable has inside `update_step` (under a distribution strategy the variable
there may be a per-replica component, so its path is not a safe key). Nor does TensorFlow let
go of the gradients a traced `tf.custom_gradient` registers (`released_custom_gradients`).
Each is wrapped here once; nothing else in tltk touches a private attribute of keras,
keras_hub or tensorflow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


def sublayers(layer: keras.layers.Layer, *, include_self: bool = True) -> list[keras.layers.Layer]:
    """`layer` (with `include_self`) and every layer nested in it, at any depth, each once."""
    return layer._flatten_layers(include_self=include_self, recursive=True)


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """The position of `variable` in the list the optimizer was built with (inside
    `update_step`, under any distribution strategy)."""
    return optimizer._get_variable_index(variable)


class EMAWeightSwap(keras.callbacks.SwapEMAWeights):
    """Keras' SwapEMAWeights (`swap_on_epoch=True`) that can be told, when a phase resumes from
    a backup made at an epoch's end, that the model holds the average (as the backup saved
    it), and that can settle the average into the model when fit stops before its last
    epoch. Both reach into the callback's private state: `_ema_weights_in_model` and
    `_finalize_ema_values` (keras/src/callbacks/swap_ema_weights.py)."""

    def __init__(self, *, swapped: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = swapped

    @property
    def swapped(self) -> bool:
        """Whether the model holds the average now (and the optimizer the trained weights)."""
        return self._ema_weights_in_model

    def settle(self) -> None:
        """After an epoch's swap: make the average what fit's `finalize_variable_values` puts
        in the model at its end (else, stopped early, it would put the trained weights)."""
        self._finalize_ema_values()


CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


@contextlib.contextmanager
def released_custom_gradients() -> Iterator[None]:
    """Drop, at the end of the block, the custom gradients traced inside it.

    Every trace of a `tf.custom_gradient` (Keras' optimizer step sums gradients with one, in
    each `fit`'s train function) registers its gradient in TensorFlow's global registry for
    good, and that closure holds the traced graph: each fit leaks its whole train-step graph
    (tensorflow/tensorflow#97697), about 10 MB a tiny run here, whatever clear_session does.
    A registered gradient is only looked up while a graph is differentiated, which a train
    step does while it is traced; so once the models of the block are no longer trained,
    its entries can go. Entries registered before the block are left as they are.
    """
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    before = set(registry)
    try:
        yield
    finally:
        for name in [n for n in registry if n not in before]:
            if name.startswith(CUSTOM_GRADIENT_PREFIX):
                del registry[name]
