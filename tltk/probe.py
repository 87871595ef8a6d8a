"""The linear probe: the head's scores layer fitted in closed form or by L-BFGS on cached
backbone features, the LP of LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution"): fine-tuning then starts from a head that
already fits, so its first steps do not push random-head gradients into the backbone.

The probe follows the scores layer's activation (the task type's `HeadSpec.activation`):

    softmax  multinomial logistic regression (scikit-learn, lbfgs)
    sigmoid  one logistic regression per output (one-vs-rest)
    None     ridge regression

on standardised features, the L2 strength (C, or ridge's alpha) chosen from a log grid by the
loss on the validation split (C 1 / alpha 1 without one); the standardisation is folded into
the weights, so the Keras layer computes exactly the probe's scores from raw features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

C_GRID = tuple(10.0**k for k in range(-4, 3))
"""Logistic regressions' inverse L2 strength C, tried in ascending order (warm starts)."""
ALPHA_GRID = tuple(10.0**k for k in range(-2, 5))
"""Ridge's L2 strength alpha."""
ACTIVATIONS = ("softmax", "sigmoid", None)
"""The scores activations a probe can fit."""
_EPS = 1e-7


@dataclass
class Probe:
    """A fitted probe, as the scores layer's weights: scores = act(x @ kernel + bias)."""

    kernel: np.ndarray
    """[C, K] float32."""
    bias: np.ndarray
    """[K] float32."""
    strength: str
    """The chosen L2 strength, e.g. "C 0.01" or "alpha 100"."""
    val: dict[str, float]
    """On the validation split (empty without one): loss (the head's loss, unsmoothed) and
    accuracy (classification, multi-label: per output at 0.5) or mae (regression)."""

    def scores(self, features: np.ndarray, activation: str | None) -> np.ndarray:
        """What the scores layer computes from raw features."""
        return _activate(features @ self.kernel + self.bias, activation)


def fit_probe(
    activation: str | None,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    *,
    class_weight: dict[int, float] | None = None,
) -> Probe:
    """The probe for a scores layer with `activation` from (features [N, C], targets) pairs:
    targets as the loss takes them (one-hot [N, K], multi-hot [N, K] or values [N])."""
    from sklearn.preprocessing import StandardScaler

    if activation not in ACTIVATIONS:
        raise ValueError(f"no linear probe for a scores activation {activation!r}")
    x, y = np.asarray(train[0], np.float64), np.asarray(train[1], np.float64)
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    vs = (scaler.transform(np.asarray(val[0], np.float64)), np.asarray(val[1])) if val else None
    fit = {"softmax": _multinomial, "sigmoid": _one_vs_rest, None: _ridge}[activation]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at a grid's ends: scored on val
        kernel, bias, strength = fit(xs, y, vs, class_weight)
    # Fold the standardisation in: w . (x - m) / s + b = (w / s) . x + (b - w . m / s).
    kernel = kernel / scaler.scale_[:, None]
    bias = bias - scaler.mean_ @ kernel
    probe = Probe(kernel.astype(np.float32), bias.astype(np.float32), strength, {})
    if val:
        probe.val = _scores(activation, probe.scores(np.asarray(val[0]), activation), val[1])
    return probe


def _multinomial(x, y, val, class_weight):
    from sklearn.linear_model import LogisticRegression

    k = y.shape[1]
    ids = y.argmax(axis=1)
    model = LogisticRegression(max_iter=1000, warm_start=True, class_weight=class_weight)

    def weights(m):
        present = m.classes_
        coef, intercept = m.coef_, m.intercept_
        if len(present) == 2:  # one logit d = z1 - z0: softmax([-d/2, d/2]) = sigmoid(d)
            coef, intercept = np.concatenate([-coef, coef]) / 2, np.array([-1, 1]) * intercept / 2
        kernel = np.zeros((x.shape[1], k))
        bias = np.full(k, (intercept.min() if len(intercept) else 0.0) - 10.0)  # absent classes
        kernel[:, present], bias[present] = coef.T, intercept
        return kernel, bias

    if len(np.unique(ids)) < 2:
        raise ValueError("a linear probe needs at least two classes in the training split")
    return _choose(C_GRID, "C", lambda c: weights(model.set_params(C=c).fit(x, ids)), val,
                   "softmax")  # fmt: skip


def _one_vs_rest(x, y, val, class_weight):
    from sklearn.linear_model import LogisticRegression

    models = [LogisticRegression(max_iter=1000, warm_start=True) for _ in range(y.shape[1])]

    def fit(c):
        kernel, bias = np.zeros((x.shape[1], y.shape[1])), np.zeros(y.shape[1])
        for j, model in enumerate(models):
            column = y[:, j] >= 0.5
            if column.all() or not column.any():  # one value: a constant, confident output
                bias[j] = _logit(np.clip(column.mean(), 1e-4, 1 - 1e-4))
                continue
            model.set_params(C=c).fit(x, column)
            kernel[:, j], bias[j] = model.coef_[0], model.intercept_[0]
        return kernel, bias

    return _choose(C_GRID, "C", fit, val, "sigmoid")


def _ridge(x, y, val, class_weight):
    from sklearn.linear_model import Ridge

    def fit(alpha):
        model = Ridge(alpha=alpha).fit(x, y.reshape(len(y), -1))
        return model.coef_.T, np.atleast_1d(model.intercept_)

    return _choose(ALPHA_GRID, "alpha", fit, val, None)


def _choose(grid, name: str, fit, val, activation):
    """(kernel, bias, "NAME value") of the grid value with the lowest val loss (ties: the
    first, the strongest regularisation for C); without val, the value 1."""
    if val is None:
        kernel, bias = fit(1.0)
        return kernel, bias, f"{name} 1 (no validation split to choose it on)"
    best = None
    for value in grid:
        kernel, bias = fit(value)
        loss = _scores(activation, _activate(val[0] @ kernel + bias, activation), val[1])["loss"]
        if best is None or loss < best[0] - 1e-12:
            best = (loss, kernel.copy(), bias.copy(), value)
    _, kernel, bias, value = best
    return kernel, bias, f"{name} {value:g}"


def _activate(z: np.ndarray, activation: str | None) -> np.ndarray:
    if activation == "softmax":
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _scores(activation: str | None, scores: np.ndarray, targets: np.ndarray) -> dict:
    targets = np.asarray(targets, np.float64)
    if activation is None:
        error = scores.reshape(len(targets), -1) - targets.reshape(len(targets), -1)
        return {"loss": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}
    p = np.clip(scores, _EPS, 1 - _EPS)
    if activation == "softmax":
        loss = -np.mean(np.sum(targets * np.log(p), axis=1))
        accuracy = np.mean(p.argmax(axis=1) == targets.argmax(axis=1))
    else:
        loss = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p))
        accuracy = np.mean((p >= 0.5) == (targets >= 0.5))
    return {"loss": float(loss), "accuracy": float(accuracy)}
