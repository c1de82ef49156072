"""Gradient checking for layers and kernels: backward against float64 central differences.

Used by the tests (every kernel and layer has one); kept in the package so that a
new layer's author checks it the same way.
"""
import numpy as np

from seqtool.model.layers import Layer


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / max(||a||, ||b||), 0 when both are zero."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(a - b) / scale)


def numerical_gradient(f, arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every entry of arr (perturbed in place, restored)."""
    grad = np.zeros(arr.shape, dtype=np.float64)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        plus = f()
        flat[k] = old - eps
        minus = f()
        flat[k] = old
        gflat[k] = (plus - minus) / (2 * eps)
    return grad


def gradient_check(layer: Layer, x, make_ctx, train: bool = False, eps: float = 1e-6,
                   seed: int = 12345) -> dict[str, float]:
    """Relative error between backward and central differences for the input and every parameter.

    The layer must already be float64. ``make_ctx()`` gives a fresh Context per
    forward (with a fixed-seed RNG, so dropout masks repeat). The loss is
    sum(y * R) for a fixed random R. Returns {"x": err, qualified param name: err}
    ("x" only for a float input).
    """
    y, backward = layer(x, make_ctx(), train)
    R = np.random.default_rng(seed).normal(size=y.shape)
    layer.zero_grads()
    dx = backward(R.copy())

    def loss():
        return float((layer(x, make_ctx(), train)[0] * R).sum())

    errors = {}
    if dx is not None and np.issubdtype(np.asarray(x).dtype, np.floating):
        errors["x"] = relative_error(dx, numerical_gradient(loss, x, eps))
    for qname, owner, name in layer.walk():
        errors[qname] = relative_error(owner.grads[name], numerical_gradient(loss, owner.params[name], eps))
    return errors
