"""Growing a trained classifier's head for new classes.

The grown model is the old one with a wider scores layer: every other weight is copied, and
the first K_old columns of the scores kernel and bias are the old ones. So before any training
the old classes' logits (the scores layer's pre-softmax outputs) are identical, and so are
their ranking and their probabilities relative to each other; the probabilities themselves
are not, since the softmax now shares the mass with the new columns.

The new columns start from a probe (`new_rows: probe`, `probe_new_rows`): a multinomial
logistic regression on the features of the training examples. When they hold examples of old
classes (a replay buffer, new data of old classes), the old columns are held fixed in it, so
the new classes' scores are fitted against the old ones. When they hold none (finetune,
distill), that fit has no bound: no example asks for an old class, so raising the new rows'
biases always lowers the loss, and L-BFGS stops with the new classes' scores far above the old
ones on every input (measured on digits 0-4 then 5-9: new biases 6.8 above the old on
average, 3 % of the old test digits still taken for an old class before any training). Then
the new rows are fitted among the new classes alone (a bounded softmax of their own) and their
biases shifted by one value, chosen by the loss of the whole softmax on the validation split
when it holds old and new classes (the past run's val examples and the new data's), else to
centre them on the old rows' mean. `random` keeps Keras' initialisation.

The probe's L2 strength is chosen on the validation split (the past run's val examples and the
new data's), on standardised features, as for a first run's probe (`tltk.probe`): with one
fixed C on raw features the new rows' scores came out on another scale than the old ones
(measured on Fashion-MNIST: old rows from a probe at C 0.01 and a head phase, new rows at C 1,
so the grown head took 73 % of the old classes' val images for new classes).
"""

from __future__ import annotations

import keras
import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from tltk.continual.features import SCORES_LAYER

PROBE_C = 1.0
"""Inverse L2 strength without a validation split to choose it on, scikit-learn's convention
(0.5 |W|^2 + C * sum of the losses) on standardised features, as `tltk.probe` fits the head of a
first run."""


def copy_grown(old: keras.Model, new: keras.Model) -> int:
    """Copy `old`'s weights into `new`, a model built the same way with K_new >= K_old scores.
    Returns K_old. ValueError when the two differ other than in that width."""
    if len(old.layers) != len(new.layers):
        raise ValueError(f"the grown model has {len(new.layers)} layers, the old {len(old.layers)}")
    k_old = old.get_layer(SCORES_LAYER).get_weights()[0].shape[1]
    for source, target in zip(old.layers, new.layers, strict=True):
        weights, grown = source.get_weights(), target.get_weights()
        if target.name == SCORES_LAYER:
            (kernel, bias), (new_kernel, new_bias) = weights, grown
            new_kernel[:, :k_old], new_bias[:k_old] = kernel, bias
            weights = [new_kernel, new_bias]
        shapes = [w.shape for w in weights], [w.shape for w in grown]
        if shapes[0] != shapes[1]:
            raise ValueError(f"layer {target.name}: weights {shapes[1]} but the old {shapes[0]}")
        target.set_weights(weights)
    return k_old


def set_new_rows(model: keras.Model, k_old: int, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Set the scores layer's columns from `k_old` on."""
    layer = model.get_layer(SCORES_LAYER)
    full_kernel, full_bias = layer.get_weights()
    full_kernel[:, k_old:], full_bias[k_old:] = kernel, bias
    layer.set_weights([full_kernel, full_bias])


def probe_rows(
    features: np.ndarray,
    labels: np.ndarray,
    old_kernel: np.ndarray,
    old_bias: np.ndarray,
    num_classes: int,
    *,
    c: float = PROBE_C,
    max_iter: int = 300,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(kernel [D, K_new], bias [K_new]) of the new classes minimising the softmax
    cross-entropy of all `num_classes` scores on (`features`, `labels`) plus 0.5 |W|^2 / C, with
    the old columns fixed at (`old_kernel`, `old_bias`). The new rows are fitted on standardised
    features (so C means what it means for `tltk.probe`) and returned for raw ones. L-BFGS from
    `start` (rows of an earlier fit: a warm start) or zeros; convex, so deterministic."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    mean, scale = f.mean(axis=0), f.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature, as scikit-learn's StandardScaler does
    x = (f - mean) / scale
    k_old = old_kernel.shape[1]
    k_new = num_classes - k_old
    fixed = f @ old_kernel.astype(np.float64) + old_bias.astype(np.float64)
    onehot = np.eye(num_classes)[np.asarray(labels, dtype=np.int64)]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * k_new].reshape(d, k_new), theta[d * k_new :]
        z = np.concatenate([fixed, x @ w + b], axis=1)
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -(onehot * log_p).sum() + 0.5 * (w**2).sum() / c
        g = (np.exp(log_p) - onehot)[:, k_old:]
        grad = np.concatenate([(x.T @ g + w / c).ravel(), g.sum(axis=0)])
        return loss / n, grad / n

    theta0 = np.zeros(d * k_new + k_new)
    if start is not None:  # raw-feature rows back to standardised ones
        kernel0 = np.asarray(start[0], np.float64)
        theta0 = np.concatenate([(kernel0 * scale[:, None]).ravel(), start[1] + mean @ kernel0])
    result = minimize(
        loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    w, b = result.x[: d * k_new].reshape(d, k_new), result.x[d * k_new :]
    kernel = w / scale[:, None]  # w . (x - m) / s + b = (w / s) . x + (b - m . w / s)
    return kernel.astype("float32"), (b - mean @ kernel).astype("float32")


def probe_new_rows(
    features: np.ndarray,
    labels: np.ndarray,
    old_kernel: np.ndarray,
    old_bias: np.ndarray,
    num_classes: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(kernel, bias, how) of the new classes' rows from the training examples' features (see
    the module docstring): `probe_rows` against the fixed old columns when an example is of an
    old class, else a probe among the new classes with its biases shifted by one value (chosen
    by the whole softmax's val loss when `val` holds old and new classes, else centring them on
    the old mean). The
    L2 strength is chosen from `tltk.probe.C_GRID` by the loss on `val` (features, labels: the
    whole softmax with the old columns fixed; among the new classes, their examples alone),
    PROBE_C without it."""
    labels = np.asarray(labels, dtype=np.int64)
    k_old, full, whole_val = old_kernel.shape[1], (old_kernel, old_bias, num_classes), val
    against = bool((labels < k_old).any())
    if not against:  # fitted as a softmax of the new classes alone, then shifted
        old_kernel, old_bias = old_kernel[:, :0], old_bias[:0]
        labels, num_classes = labels - k_old, num_classes - k_old
        if val is not None:
            keep = np.asarray(val[1]) >= k_old
            val = (np.asarray(val[0])[keep], np.asarray(val[1])[keep] - k_old)
    # One BLAS thread: small fits, which threads contending with TensorFlow's slow (tltk.probe).
    with threadpool_limits(1):
        if val is not None and len(val[1]):
            (kernel, bias), c = _chosen_on_val(
                features, labels, old_kernel, old_bias, num_classes, val
            )
            strength = f"C {c:g} chosen on {len(val[1])} val examples"
        else:
            kernel, bias = probe_rows(features, labels, old_kernel, old_bias, num_classes)
            strength = f"C {PROBE_C:g} (no val split)"
    if against:
        return kernel, bias, f"against the fixed old rows, {strength}"
    how = f"among the new classes (no old example to fit against), {strength}"
    shift = _shift_on_val(kernel, bias, *full, whole_val)
    if shift is None:
        shift, where = float(np.mean(full[1])) - float(bias.mean()), "centred on the old ones"
    else:
        where = "shifted by the val loss of old and new classes"
    return kernel, (bias + shift).astype("float32"), f"{how}; biases {where}"


def _shift_on_val(kernel, bias, old_kernel, old_bias, num_classes, val) -> float | None:
    """The one shift of the new rows' biases that minimises the whole softmax's loss on `val`
    (convex in the shift), or None without val examples of both old and new classes."""
    from scipy.optimize import minimize_scalar

    if val is None:
        return None
    f, y = np.asarray(val[0], np.float64), np.asarray(val[1], np.int64)
    k_old = old_kernel.shape[1]
    if not ((y < k_old).any() and (y >= k_old).any()):
        return None
    fixed, new = f @ old_kernel + old_bias, f @ kernel + bias

    def loss(shift: float) -> float:
        return _softmax_loss(fixed, new + shift, y)

    return float(minimize_scalar(loss, bounds=(-50.0, 50.0), method="bounded").x)


def _softmax_loss(fixed: np.ndarray, new: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the whole softmax over the old rows' scores `fixed` and the new
    rows' `new`, for labels `y`."""
    z = np.concatenate([fixed, new], axis=1)
    z -= z.max(axis=1, keepdims=True)
    return float(-np.mean(z[np.arange(len(z)), y] - np.log(np.exp(z).sum(axis=1))))


def _chosen_on_val(features, labels, old_kernel, old_bias, num_classes, val):
    """((kernel, bias), C) of the grid's C with the lowest val loss (ties: the strongest
    regularisation), each fit warm-started from the last."""
    from tltk.probe import C_GRID

    f_val = np.asarray(val[0], np.float64)
    fixed = f_val @ old_kernel.astype(np.float64) + old_bias.astype(np.float64)
    y_val = np.asarray(val[1], np.int64)
    best, rows = None, None
    for c in C_GRID:
        rows = probe_rows(features, labels, old_kernel, old_bias, num_classes, c=c, start=rows)
        loss = _softmax_loss(fixed, f_val @ rows[0] + rows[1], y_val)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, rows, c)
    return best[1], best[2]
