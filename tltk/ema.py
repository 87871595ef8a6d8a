"""`train.ema`: phases that train with an exponential moving average of their weights, whose
validation, best-epoch weights, backups and result are the average's.

Keras' optimizers keep the average (`use_ema`) and `fit` ends by putting it in the model
(`finalize_variable_values`). `EMAWeightSwap` (tltk/compat.py) puts it in the model at each
epoch's end, before tltk's validation, so `val_*`, early stopping's best weights and the
best-epoch checkpoint see the average, and takes the trained weights back at the next epoch's
start. A backup made at an epoch's end therefore holds the average in the model and the trained
weights in the optimizer; a resumed phase starts swapped (`swapped=True`) and goes on with both.
"""

from __future__ import annotations

import keras

from tltk.compat import EMAWeightSwap


class EMAStop(keras.callbacks.Callback):
    """After the callbacks that may stop fit (early stopping): when one did, the average that
    the swap put in the model is what fit leaves in it."""

    def __init__(self, swap: EMAWeightSwap):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training and self.swap.swapped:
            self.swap.settle()


def ema_callbacks(resumed: bool) -> tuple[EMAWeightSwap, EMAStop]:
    """(the swap, first in a phase's callbacks; the stop, after early stopping). `resumed`:
    the phase goes on from a backup made at an epoch's end."""
    swap = EMAWeightSwap(swapped=resumed)
    return swap, EMAStop(swap)
