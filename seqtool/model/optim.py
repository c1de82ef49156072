"""Optimisers and gradient clipping over a list of parameter arrays, in place.

    params, grads = model.param_list(), model.grad_list()
    opt = Adam(params, lr=1e-3)
    ...                                   # forward + backward fill grads
    rows = model.grad_rows()              # None per dense param, touched rows per embedding
    norm = clip_by_global_norm(grads, 5.0, rows)
    opt.step(grads, rows)

``rows`` (optional, aligned with params) makes a step sparse: for param i with
rows[i] not None (unique row indices of a 2-d table), only those rows are read,
clipped and updated, the "lazy" update of torch.optim.SparseAdam. It is exact
for clipping (the other rows' gradients are zero) and saves a full pass over a
large embedding table; for Adam and momentum SGD it differs from the dense
update only in that untouched rows do not keep moving on stale momentum.
Without rows every update is dense and matches torch.optim.Adam / SGD.
"""
import math

import numpy as np
from numba import njit, prange

from seqtool.kernels.parallel import elementwise


# ---------------------------------------------------------------- kernels
# error_model "numpy": no ZeroDivisionError branch on each division, so the
# element loops vectorise. Reductions may reassociate (a norm does not care).
# The updates are built parallel and serial (kernels/parallel.py: small parameters skip the thread wake-up).
_UPDATE = dict(cache=True, error_model="numpy")
_REDUCE = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})

# Scalars reach the kernels as one array ``c`` of the parameters' dtype, so a
# float32 model is updated in float32 arithmetic throughout (as torch does)
# and the loops vectorise instead of converting every element to float64.

@elementwise(**_UPDATE)
def _adam_dense(p, g, m, v, c):
    # p, g, m, v (n,) flat views; c = [b1, 1-b1, b2, 1-b2, lr/bc1, sqrt(bc2), eps, wd]
    # torch.optim.Adam's update, L2 weight decay added to the gradient
    b1, c1, b2, c2, step, sq_bc2, eps, wd = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    for k in prange(p.shape[0]):  # parallel over elements; iteration k owns p[k], m[k], v[k]
        gk = g[k] + wd * p[k]
        m[k] = b1 * m[k] + c1 * gk                            # 1: first moment
        v[k] = b2 * v[k] + c2 * gk * gk                       # 2: second moment
        p[k] -= step * m[k] / (np.sqrt(v[k]) / sq_bc2 + eps)  # 3: bias-corrected step


@elementwise(**_UPDATE)
def _adam_rows(p, g, m, v, rows, c):
    # p, g, m, v (V, d); rows (R,) unique -> _adam_dense's update on those rows only
    b1, c1, b2, c2, step, sq_bc2, eps, wd = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    for r in prange(rows.shape[0]):  # rows are unique, so iteration r owns row rows[r]
        i = rows[r]
        for j in range(p.shape[1]):
            gk = g[i, j] + wd * p[i, j]
            m[i, j] = b1 * m[i, j] + c1 * gk
            v[i, j] = b2 * v[i, j] + c2 * gk * gk
            p[i, j] -= step * m[i, j] / (np.sqrt(v[i, j]) / sq_bc2 + eps)


@elementwise(**_UPDATE)
def _sgd_dense(p, g, buf, c, nesterov):
    # p, g, buf (n,) flat; c = [lr, momentum, wd]. torch.optim.SGD (dampening 0):
    # buf = mom*buf + g, buf starting at zero (so the first buf is g, as torch's clone)
    lr, mom, wd = c[0], c[1], c[2]
    for k in prange(p.shape[0]):  # iteration k owns p[k], buf[k]
        gk = g[k] + wd * p[k]
        if mom != 0.0:
            buf[k] = mom * buf[k] + gk
            gk = gk + mom * buf[k] if nesterov else buf[k]
        p[k] -= lr * gk


@elementwise(**_UPDATE)
def _sgd_rows(p, g, buf, rows, c, nesterov):
    lr, mom, wd = c[0], c[1], c[2]
    for r in prange(rows.shape[0]):  # rows unique: iteration r owns row rows[r]
        i = rows[r]
        for j in range(p.shape[1]):
            gk = g[i, j] + wd * p[i, j]
            if mom != 0.0:
                buf[i, j] = mom * buf[i, j] + gk
                gk = gk + mom * buf[i, j] if nesterov else buf[i, j]
            p[i, j] -= lr * gk


@njit(**_REDUCE)
def _sumsq(g, scale):
    # sum((g * scale)^2) in float64; scale < 1 guards against overflow
    s = 0.0
    for k in range(g.shape[0]):
        x = g[k] * scale
        s += x * x
    return s


@njit(**_REDUCE)
def _absmax(g):
    a = 0.0
    for k in range(g.shape[0]):
        a = max(a, abs(g[k]))
    return a


# ---------------------------------------------------------------- helpers

def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-d view of a contiguous array (never a copy: updates must land in place)."""
    if not a.flags.c_contiguous:
        raise ValueError("parameters and gradients must be C-contiguous arrays")
    return a.reshape(-1)


def _pieces(grads, rows):
    """Flat arrays holding every gradient entry that can be non-zero."""
    rows = rows or [None] * len(grads)
    for g, r in zip(grads, rows):
        yield _flat(g) if r is None else _flat(g[r]) if len(r) else g.reshape(-1)[:0]


def _check(params, grads, rows):
    if len(grads) != len(params):
        raise ValueError(f"{len(grads)} gradients for {len(params)} parameters")
    if rows is not None and len(rows) != len(params):
        raise ValueError(f"{len(rows)} row sets for {len(params)} parameters")
    return rows or [None] * len(params)


# ---------------------------------------------------------------- clipping

def global_norm(grads, rows=None) -> float:
    """sqrt of the sum of squares of all gradients together (float64, overflow-safe)."""
    pieces = list(_pieces(grads, rows))
    total = sum(_sumsq(g, 1.0) for g in pieces)
    if math.isfinite(total):
        return math.sqrt(total)
    if math.isnan(total):
        return total                           # a NaN in the gradients (its absmax would read as 0)
    amax = max(_absmax(g) for g in pieces)     # squares overflowed: rescale by the largest entry
    if not math.isfinite(amax):
        return amax                            # inf or nan in the gradients themselves
    return amax * math.sqrt(sum(_sumsq(g, 1.0 / amax) for g in pieces))


def clip_by_global_norm(grads, max_norm: float, rows=None) -> float:
    """Scale all gradients together so their global norm is at most max_norm; return the pre-clip norm.

    A non-finite norm (inf/nan in a gradient) is returned and the gradients are
    left alone: the caller should skip that step.
    """
    norm = global_norm(grads, rows)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g, r in zip(grads, rows or [None] * len(grads)):
            if r is None:
                g *= scale
            else:
                g[r] *= scale
    return norm


def clip_by_value(grads, value: float, rows=None) -> None:
    """Clip every gradient entry into [-value, value], in place."""
    for g, r in zip(grads, rows or [None] * len(grads)):
        if r is None:
            np.clip(g, -value, value, out=g)
        else:
            g[r] = np.clip(g[r], -value, value)


# ---------------------------------------------------------------- optimisers

def _copy_into(targets: list, saved: list) -> None:
    if len(targets) != len(saved) or any(t.shape != np.shape(s) for t, s in zip(targets, saved)):
        raise ValueError("the saved optimiser state does not fit this model's parameters")
    for t, s in zip(targets, saved):
        t[...] = s


class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay (torch.optim.SGD)."""

    MOMENTS = ("buf",)      # state_arrays entries that hold one array per parameter (empty without momentum)

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay, self.nesterov = lr, momentum, weight_decay, nesterov
        # momentum buffers; without momentum the kernels never read them, so p stands in
        self.buf = [np.zeros_like(p) for p in self.params] if momentum else self.params

    def step(self, grads, rows=None) -> None:
        rows = _check(self.params, grads, rows)
        consts = [self.lr, self.momentum, self.weight_decay]
        for p, g, b, r in zip(self.params, grads, self.buf, rows):
            c = np.array(consts, dtype=p.dtype)
            if r is None:
                _sgd_dense(_flat(p), _flat(g), _flat(b), c, self.nesterov)
            else:
                _sgd_rows.for_work(r.size * p.shape[1])(p, g, b, r, c, self.nesterov)

    def state_arrays(self) -> dict:
        """Momentum buffers (none without momentum), for checkpoints."""
        return {"buf": list(self.buf) if self.momentum else []}

    def load_state_arrays(self, saved: dict) -> None:
        """Continue from ``state_arrays()`` of an optimiser over parameters of the same shapes."""
        if self.momentum:
            _copy_into(self.buf, saved["buf"])


class Adam:
    """Adam with bias correction and optional L2 weight decay, exactly torch.optim.Adam's update."""

    MOMENTS = ("m", "v")    # state_arrays entries that hold one array per parameter ("t" holds counts)

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = [0] * len(self.params)   # per parameter, as SparseAdam counts only steps that touch it

    def step(self, grads, rows=None) -> None:
        rows = _check(self.params, grads, rows)
        b1, b2 = self.betas
        for i, (p, g, m, v, r) in enumerate(zip(self.params, grads, self.m, self.v, rows)):
            if r is not None and len(r) == 0:
                continue
            self.t[i] += 1
            bc1, bc2 = 1.0 - b1 ** self.t[i], 1.0 - b2 ** self.t[i]
            c = np.array([b1, 1.0 - b1, b2, 1.0 - b2, self.lr / bc1, math.sqrt(bc2), self.eps,
                          self.weight_decay], dtype=p.dtype)
            if r is None:
                _adam_dense(_flat(p), _flat(g), _flat(m), _flat(v), c)
            else:
                _adam_rows.for_work(r.size * p.shape[1])(p, g, m, v, r, c)

    def state_arrays(self) -> dict:
        """Moments and step counts, for checkpoints."""
        return {"m": list(self.m), "v": list(self.v), "t": list(self.t)}

    def load_state_arrays(self, saved: dict) -> None:
        """Continue from ``state_arrays()`` of an optimiser over parameters of the same shapes."""
        _copy_into(self.m, saved["m"])
        _copy_into(self.v, saved["v"])
        self.t = [int(t) for t in saved["t"]]
