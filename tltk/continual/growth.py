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
biases centred on the old rows' mean. `random` keeps Keras' initialisation.
"""

from __future__ import annotations

import keras
import numpy as np
from scipy.optimize import minimize

from tltk.continual.features import SCORES_LAYER

PROBE_C = 1.0
"""Inverse L2 strength, scikit-learn's convention: 0.5 |W|^2 + C * sum of the losses."""


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
) -> tuple[np.ndarray, np.ndarray]:
    """(kernel [D, K_new], bias [K_new]) of the new classes minimising the softmax
    cross-entropy of all `num_classes` scores on (`features`, `labels`) plus 0.5 |W|^2 / C, with
    the old columns fixed at (`old_kernel`, `old_bias`). L-BFGS; convex, so deterministic."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    k_old = old_kernel.shape[1]
    k_new = num_classes - k_old
    fixed = f @ old_kernel.astype(np.float64) + old_bias.astype(np.float64)
    onehot = np.eye(num_classes)[np.asarray(labels, dtype=np.int64)]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * k_new].reshape(d, k_new), theta[d * k_new :]
        z = np.concatenate([fixed, f @ w + b], axis=1)
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -(onehot * log_p).sum() + 0.5 * (w**2).sum() / c
        g = (np.exp(log_p) - onehot)[:, k_old:]
        grad = np.concatenate([(f.T @ g + w / c).ravel(), g.sum(axis=0)])
        return loss / n, grad / n

    result = minimize(
        loss_and_grad, np.zeros(d * k_new + k_new), jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter},
    )  # fmt: skip
    theta = result.x
    return theta[: d * k_new].reshape(d, k_new).astype("float32"), theta[d * k_new :].astype(
        "float32"
    )


def probe_new_rows(
    features: np.ndarray,
    labels: np.ndarray,
    old_kernel: np.ndarray,
    old_bias: np.ndarray,
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(kernel, bias, how) of the new classes' rows from the training examples' features (see
    the module docstring): `probe_rows` against the fixed old columns when an example is of an
    old class, else a probe among the new classes with biases centred on the old mean."""
    labels = np.asarray(labels, dtype=np.int64)
    k_old = old_kernel.shape[1]
    if (labels < k_old).any():
        kernel, bias = probe_rows(features, labels, old_kernel, old_bias, num_classes)
        return kernel, bias, "against the fixed old rows"
    kernel, bias = probe_rows(features, labels - k_old, old_kernel[:, :0], old_bias[:0],
                              num_classes - k_old)  # fmt: skip
    bias = bias - bias.mean() + float(np.mean(old_bias))
    return kernel, bias.astype("float32"), "among the new classes (no old example to fit against)"
