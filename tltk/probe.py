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

import copy
import warnings
from collections.abc import Callable
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
    sklearn_scores: Callable[[np.ndarray], np.ndarray]
    """Raw features -> scikit-learn's scores of the chosen fit (`predict_proba`, one column per
    class or label; ridge's `predict`), standardisation included."""

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
    from threadpoolctl import threadpool_limits

    if activation not in ACTIVATIONS:
        raise ValueError(f"no linear probe for a scores activation {activation!r}")
    x, y = np.asarray(train[0], np.float64), np.asarray(train[1], np.float64)
    scaler = StandardScaler().fit(x)
    vs = (scaler.transform(np.asarray(val[0], np.float64)), np.asarray(val[1])) if val else None
    fitter = {"softmax": _Multinomial, "sigmoid": _OneVsRest, None: _Ridge}[activation]
    fitter = fitter(scaler.transform(x), y, class_weight)
    # One BLAS thread: these fits are small, and BLAS threads contending with TensorFlow's
    # (or other processes') made them 20x slower in wall time (benchmarks in BENCHMARKS.md).
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # ConvergenceWarning at a grid's ends: scored on val
        chosen, strength = _choose(fitter, vs, activation)
    kernel, bias = fitter.weights(chosen)
    # Fold the standardisation in: w . (x - m) / s + b = (w / s) . x + (b - w . m / s).
    kernel = kernel / scaler.scale_[:, None]
    bias = bias - scaler.mean_ @ kernel
    probe = Probe(
        kernel.astype(np.float32), bias.astype(np.float32), strength, {},
        lambda f: fitter.scores(chosen, scaler.transform(np.asarray(f, np.float64))),
    )  # fmt: skip
    if val:
        probe.val = _scores(activation, probe.scores(np.asarray(val[0]), activation), val[1])
    return probe


class _Multinomial:
    """Multinomial logistic regression (lbfgs), warm-started along the C grid."""

    grid, name = C_GRID, "C"

    def __init__(self, x, y, class_weight):
        from sklearn.linear_model import LogisticRegression

        self.x, self.ids, self.k = x, y.argmax(axis=1), y.shape[1]
        if len(np.unique(self.ids)) < 2:
            raise ValueError("a linear probe needs at least two classes in the training split")
        self.model = LogisticRegression(max_iter=1000, warm_start=True, class_weight=class_weight)

    def fit(self, c: float):
        return copy.deepcopy(self.model.set_params(C=c).fit(self.x, self.ids))

    def weights(self, model) -> tuple[np.ndarray, np.ndarray]:
        present, coef, intercept = model.classes_, model.coef_, model.intercept_
        if len(present) == 2:  # one logit d = z1 - z0: softmax([-d/2, d/2]) = sigmoid(d)
            coef, intercept = np.concatenate([-coef, coef]) / 2, np.array([-1, 1]) * intercept / 2
        kernel = np.zeros((self.x.shape[1], self.k))
        bias = np.full(self.k, intercept.min() - 10.0)  # a class absent from train: ~never
        kernel[:, present], bias[present] = coef.T, intercept
        return kernel, bias

    def scores(self, model, x) -> np.ndarray:
        out = np.zeros((len(x), self.k))
        out[:, model.classes_] = model.predict_proba(x)
        return out


class _OneVsRest:
    """One binary logistic regression per output; an output with one value in train is a
    constant, confident score."""

    grid, name = C_GRID, "C"

    def __init__(self, x, y, class_weight):
        from sklearn.linear_model import LogisticRegression

        self.x, self.y = x, y >= 0.5
        self.models = [LogisticRegression(max_iter=1000, warm_start=True) for _ in y.T]

    def fit(self, c: float):
        fitted = []
        for column, model in zip(self.y.T, self.models, strict=True):
            if column.all() or not column.any():
                fitted.append(float(np.clip(column.mean(), 1e-4, 1 - 1e-4)))
            else:
                fitted.append(copy.deepcopy(model.set_params(C=c).fit(self.x, column)))
        return fitted

    def weights(self, models) -> tuple[np.ndarray, np.ndarray]:
        kernel, bias = np.zeros((self.x.shape[1], len(models))), np.zeros(len(models))
        for j, model in enumerate(models):
            if isinstance(model, float):
                bias[j] = np.log(model / (1 - model))
            else:
                kernel[:, j], bias[j] = model.coef_[0], model.intercept_[0]
        return kernel, bias

    def scores(self, models, x) -> np.ndarray:
        columns = [
            np.full(len(x), m) if isinstance(m, float) else m.predict_proba(x)[:, 1] for m in models
        ]
        return np.stack(columns, axis=1)


class _Ridge:
    grid, name = ALPHA_GRID, "alpha"

    def __init__(self, x, y, class_weight):
        self.x, self.y = x, y.reshape(len(y), -1)

    def fit(self, alpha: float):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=alpha).fit(self.x, self.y)

    def weights(self, model) -> tuple[np.ndarray, np.ndarray]:
        coef = np.asarray(model.coef_).reshape(-1, self.x.shape[1])  # [outputs, C], any version
        return coef.T, np.atleast_1d(model.intercept_)

    def scores(self, model, x) -> np.ndarray:
        return model.predict(x).reshape(len(x), -1)


def _choose(fitter, val, activation):
    """(fit, "NAME value") of the grid value with the lowest val loss (ties: the first, the
    strongest regularisation); without val, the value 1."""
    if val is None:
        return fitter.fit(1.0), f"{fitter.name} 1 (no validation split to choose it on)"
    best = None
    for value in fitter.grid:
        fitted = fitter.fit(value)
        kernel, bias = fitter.weights(fitted)
        loss = _scores(activation, _activate(val[0] @ kernel + bias, activation), val[1])["loss"]
        if best is None or loss < best[0] - 1e-12:
            best = (loss, fitted, value)
    return best[1], f"{fitter.name} {best[2]:g}"


def _activate(z: np.ndarray, activation: str | None) -> np.ndarray:
    if activation == "softmax":
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


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
