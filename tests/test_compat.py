"""tltk.compat: the private Keras APIs tltk wraps. These fail first when a Keras release
changes them (then fix tltk/compat.py, nothing else)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tltk.compat import sublayers, variable_index


class Block(keras.layers.Layer):
    """A layer holding layers as attributes, as KerasHub's transformer layers do."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4, name="inner_dense")
        self.norm = keras.layers.BatchNormalization(name="inner_norm")

    def call(self, x):
        return self.norm(self.dense(x))


def test_sublayers_finds_nested_layers_once():
    block, shared = Block(name="block"), keras.layers.Dense(4, name="shared")
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, shared(shared(block(inputs))))
    names = [la.name for la in sublayers(model)]
    assert names[0] == model.name
    assert sorted(names[1:]) == ["block", "inner_dense", "inner_norm", "shared", "x"]
    assert [la.name for la in sublayers(block, include_self=False)] == ["inner_dense", "inner_norm"]


@pytest.mark.parametrize("devices", [None, ["/cpu:0"]])
def test_variable_index_inside_update_step(devices):
    """The index of each variable as the optimizer sees it in `update_step`, also under a
    MirroredStrategy (where the variable there is a replica's component)."""
    seen = {}

    class Recording(keras.optimizers.SGD):
        def update_step(self, gradient, variable, learning_rate):
            seen[variable_index(self, variable)] = tuple(gradient.shape)  # traced: shapes only
            return super().update_step(gradient, variable, learning_rate)

    strategy = tf.distribute.MirroredStrategy(devices) if devices else tf.distribute.get_strategy()
    with strategy.scope():
        variables = [keras.Variable(np.zeros(n, "float32"), name=f"v{n}") for n in (1, 2, 3)]
        optimizer = Recording(0.1)
        optimizer.build(variables)
    gradients = [tf.fill([n], float(n)) for n in (1, 2, 3)]

    @tf.function
    def step():
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    strategy.run(step) if devices else step()
    assert seen == {0: (1,), 1: (2,), 2: (3,)}  # variable i has i + 1 elements
    np.testing.assert_allclose(variables[2].numpy(), [-0.3, -0.3, -0.3])


def test_the_ema_swap_reaches_the_private_state_of_keras_callback():
    from tltk.compat import EMAWeightSwap

    assert keras.callbacks.SwapEMAWeights(swap_on_epoch=True)._ema_weights_in_model is False
    assert EMAWeightSwap(swapped=True).swapped and not EMAWeightSwap().swapped
    assert callable(keras.callbacks.SwapEMAWeights()._finalize_ema_values)


def test_released_custom_gradients_frees_the_graphs_a_fit_traced():
    """A fit traces Keras' train step, whose optimizer registers a custom gradient holding the
    step's graph; inside the block the gradient works, after it the graph can be freed."""
    import gc
    import weakref

    from tensorflow.python.framework import ops

    from tltk.compat import CUSTOM_GRADIENT_PREFIX, released_custom_gradients

    def custom_gradients() -> set[str]:
        return {n for n in ops._gradient_registry._registry if n.startswith(CUSTOM_GRADIENT_PREFIX)}

    def graphs_alive() -> list:
        return [o for o in gc.get_objects() if isinstance(o, tf.Graph)]

    before = custom_gradients()
    # Graphs that earlier tests in this process left alive (their fits were not in the block)
    # are not this test's business: only the graphs the block's fit traces are checked.
    earlier = weakref.WeakSet(graphs_alive())
    with released_custom_gradients():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
        loss = model.fit(x, y, epochs=2, batch_size=4, verbose=0).history["loss"]
        assert loss[1] < loss[0]  # the gradient was there while the step was traced
        traced = custom_gradients() - before
        assert traced  # the train step registered its gradient
        graphs = [weakref.ref(o) for o in graphs_alive() if o not in earlier]
    assert custom_gradients() == before  # what the block registered is gone, nothing else
    del model
    keras.backend.clear_session()
    gc.collect()
    assert not [
        g for g in graphs if g() is not None and getattr(g(), "name", "") == "one_step_on_data"
    ]
