"""The learning-rate range test (Smith 2017; fastai's `lr_find`): train a few hundred batches
while the learning rate rises exponentially, watch the smoothed loss, suggest a rate.

`LRRangeTest` is a plain Keras callback, so the test is `model.fit` on the model the phase
compiled (its groups frozen, its optimizer, its per-group multipliers), from the phase's
starting weights; `range_test` restores those weights afterwards. The trainer runs it for a
phase whose `learning_rate` is `auto` (tltk/lr_auto.py); `tltk.lr_find` (tltk/api.py) runs it
for any phase of a recipe.

The suggestion comes from the longest descent of the smoothed loss: the longest sequence of
batches, not necessarily adjacent, each lower than the one before, whose count of batches is
the length of the fall (fastai's "valley"). The suggestion is the rate half that length before
the descent's lowest point: the middle of the real fall of a head phase's loss, and on the flat
curve of a fine-tuning phase a point well before the rise. The rate at the smoothed minimum and
the steepest-descent point are recorded beside it. A tenth of the minimum (fastai's older
`lr_min`) was tried first and failed on such a flat, noisy curve, where the minimum is wherever
the noise dips: on few-shot digits it suggested 2.7e-8, from a dip at the third batch
(BENCHMARKS.md compares the two on real phases).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

START_LR, END_LR = 1e-7, 1.0
DIVERGE = 4.0
"""The test stops once the smoothed loss exceeds this many times its best value."""


def default_steps(steps_per_epoch: int) -> int:
    """Three epochs' worth of batches, within 50..200: enough points per decade of learning
    rate, and few passes over a tiny training split (which would fit it at any rate)."""
    return int(np.clip(3 * steps_per_epoch, 50, 200))


@dataclass
class LRFinderResult:
    """The curve of one range test and the learning rate it suggests."""

    suggestion: float
    learning_rates: list[float]
    losses: list[float]
    """Raw loss of each batch, at `learning_rates[i]`."""
    smoothed: list[float]
    """Exponential moving average of `losses`, bias-corrected."""
    minimum: float
    """The learning rate at the smoothed minimum (recorded, not used)."""
    steepest: float
    """The learning rate where the smoothed loss falls fastest (recorded, not used)."""
    stopped_early: bool
    """The loss exploded (or became NaN) before the last step."""
    phase: int = 0
    plot: Path | None = None
    started_from: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = asdict(self)
        out["plot"] = str(self.plot) if self.plot else None
        return out


class LRRangeTest(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before each batch, from `start` up to `end` over
    `steps` batches (exponentially), and records the batch's loss.

    The loss is smoothed by an exponential moving average with bias correction; training stops
    once the smoothed loss exceeds `diverge` times its best value, or becomes NaN. Metrics are
    reset before each batch, so `logs["loss"]` is that batch's loss, not the epoch's mean.
    Use it with `model.fit(..., epochs=1, steps_per_epoch=steps)` on a model compiled with a
    constant learning rate.

    Args:
        start, end: the first and last learning rate.
        steps: batches from `start` to `end`.
        beta: the moving average's factor; default `1 - 10 / steps` within 0.8..0.98, so the
            smoothing window is about a tenth of the test whatever its length.
        diverge: the stopping factor.

    Example:
    ```python
    test = LRRangeTest(steps=100)
    model.fit(train_ds, epochs=1, steps_per_epoch=100, callbacks=[test], verbose=0)
    suggest_learning_rate(test.learning_rates, test.smoothed)
    ```
    """

    def __init__(
        self,
        start: float = START_LR,
        end: float = END_LR,
        steps: int = 100,
        beta: float | None = None,
        diverge: float = DIVERGE,
    ):
        super().__init__()
        if not 0 < start < end or steps < 2:
            raise ValueError(f"need 0 < start < end and steps >= 2 (got {start}, {end}, {steps})")
        self.start, self.end, self.steps = start, end, steps
        self.beta = beta if beta is not None else float(np.clip(1 - 10 / steps, 0.8, 0.98))
        self.diverge = diverge
        self.learning_rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stopped_early = False
        self._average = 0.0

    def rate(self, batch: int) -> float:
        return self.start * (self.end / self.start) ** (batch / (self.steps - 1))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate(batch)
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.learning_rates.append(self.rate(batch))
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.smoothed.append(math.nan)
            self._stop()
            return
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smooth = self._average / (1 - self.beta ** len(self.losses))
        best = min((s for s in self.smoothed if math.isfinite(s)), default=smooth)
        self.smoothed.append(smooth)
        if smooth > self.diverge * best:
            self._stop()

    def _stop(self):
        self.stopped_early = len(self.losses) < self.steps
        self.model.stop_training = True


def suggest_learning_rate(
    learning_rates: list[float], smoothed: list[float]
) -> tuple[float, float, float]:
    """(suggestion, rate at the smoothed minimum, rate of steepest descent) of a curve.

    The suggestion is the rate half the longest descent's length (in batches, so on the log
    scale) before its lowest point (see the module's docstring). The steepest descent is the
    most negative slope of the smoothed loss against log10(rate), ignoring the first tenth of
    the curve (where the average has seen too few batches to mean much).
    """
    lrs, loss = np.asarray(learning_rates, dtype=float), np.asarray(smoothed, dtype=float)
    finite = np.isfinite(loss)
    if finite.sum() < 2:
        raise ValueError("the range test recorded fewer than two finite losses")
    lrs, loss = lrs[finite], loss[finite]
    length, last = longest_descent(loss)
    minimum = float(lrs[int(np.argmin(loss))])
    skip = len(loss) // 10
    slopes = np.gradient(loss[skip:], np.log10(lrs[skip:])) if len(loss) - skip >= 2 else [0.0]
    steepest = float(lrs[skip + int(np.argmin(slopes))])
    return float(lrs[max(0, last - length // 2)]), minimum, steepest


def longest_descent(values: np.ndarray) -> tuple[int, int]:
    """(length, last index) of the longest strictly decreasing subsequence of `values` (the
    earliest to end, of equally long ones). Quadratic, for the few hundred points of a test."""
    length = np.ones(len(values), dtype=int)
    for i in range(1, len(values)):
        lower = values[:i] > values[i]
        if lower.any():
            length[i] = int(length[:i][lower].max()) + 1
    last = int(np.argmax(length))
    return int(length[last]), last


def range_test(
    model: keras.Model,
    train_ds,
    *,
    steps: int,
    class_weight: dict | None = None,
    start: float = START_LR,
    end: float = END_LR,
) -> LRFinderResult:
    """Run the range test on `model` (compiled, constant learning rate) over `train_ds`
    (an endless stream of batches), then put every weight back as it was."""
    saved = model.get_weights()  # trainable and not (BatchNorm statistics too)
    test = LRRangeTest(start=start, end=end, steps=steps)
    try:
        model.fit(
            train_ds,
            epochs=1,
            steps_per_epoch=steps,
            class_weight=class_weight,
            callbacks=[test],
            shuffle=False,
            verbose=0,
        )
    finally:
        model.set_weights(saved)
    suggestion, minimum, steepest = suggest_learning_rate(test.learning_rates, test.smoothed)
    return LRFinderResult(
        suggestion=suggestion,
        learning_rates=test.learning_rates,
        losses=test.losses,
        smoothed=test.smoothed,
        minimum=minimum,
        steepest=steepest,
        stopped_early=test.stopped_early,
    )
