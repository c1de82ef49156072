"""Inference in plain numpy: the forward kernels a model needs to predict, without numba.

Numba costs about 0.8 s before the first kernel runs in a new process
(importing it, initialising its target, loading the cached machine code),
which is most of the time ``seqtool tag`` takes on one sentence. For small
inputs the layers use these functions instead (``enabled()``); for anything
large, the numba kernels are many times faster. Same signatures and layouts
as the kernels they stand in for (kernels/__init__.py: packed rows, streams,
gate orders); the float32 results agree with the kernels' to rounding (the
kernels use a rational float32 tanh, abs. error < 4e-7). Forward only: a
layer run through here has no backward.

This module imports nothing but numpy, and nothing here may import numba.
"""
import contextlib
import threading

import numpy as np

from seqtool.kernels import check_cell

_state = threading.local()


def enabled() -> bool:
    """Whether the layers should use these functions (set by ``numpy_inference()`` on this thread)."""
    return getattr(_state, "on", False)


@contextlib.contextmanager
def numpy_inference():
    """Within the block, on this thread, layers predict through numpy instead of the numba kernels."""
    before = enabled()
    _state.on = True
    try:
        yield
    finally:
        _state.on = before


def no_backward(dy):
    raise RuntimeError("a layer run under numpy_inference() has no backward")


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))          # as the kernels compute it, without overflow


# ---------------------------------------------------------------- recurrent cells

def cell_forward(cell: str, xp: np.ndarray, w_h: np.ndarray, offsets: np.ndarray, relu: bool = False) -> np.ndarray:
    """xp (S, N, G*H) projected inputs, w_h (S, H, G*H), offsets (T+1,) -> h (S, N, H).

    Step t's rows offsets[t]:offsets[t+1] are the running sequences, a prefix
    of the ranks, so their previous states are the first n_t rows of step t-1.
    """
    S, N, _ = xp.shape
    H = w_h.shape[1]
    h = np.zeros((S, N, H), dtype=xp.dtype)
    check_cell(cell)
    c = np.zeros((S, N, H), dtype=xp.dtype) if cell == "lstm" else None
    for t in range(len(offsets) - 1):
        r0, r1 = int(offsets[t]), int(offsets[t + 1])
        n = r1 - r0
        if n == 0:
            break
        a = xp[:, r0:r1].copy()                                        # (S, n, G*H)
        if t == 0:
            prev_h = np.zeros((S, n, H), dtype=xp.dtype)
            prev_c = np.zeros((S, n, H), dtype=xp.dtype) if c is not None else None
        else:
            p0 = int(offsets[t - 1])
            prev_h = h[:, p0:p0 + n]
            prev_c = c[:, p0:p0 + n] if c is not None else None
        if cell == "rnn":
            a += np.matmul(prev_h, w_h)
            h[:, r0:r1] = np.maximum(a, 0.0) if relu else np.tanh(a)
        elif cell == "lstm":
            a += np.matmul(prev_h, w_h)                                # gates (i, f, g, o)
            i, f = _sigmoid(a[..., :H]), _sigmoid(a[..., H:2 * H])
            g, o = np.tanh(a[..., 2 * H:3 * H]), _sigmoid(a[..., 3 * H:])
            c[:, r0:r1] = f * prev_c + i * g
            h[:, r0:r1] = o * np.tanh(c[:, r0:r1])
        elif cell == "gru":                                            # candidate reads r * h (kernels/__init__)
            a[..., :2 * H] += np.matmul(prev_h, w_h[:, :, :2 * H])
            r, u = _sigmoid(a[..., :H]), _sigmoid(a[..., H:2 * H])
            cand = np.tanh(a[..., 2 * H:] + np.matmul(r * prev_h, w_h[:, :, 2 * H:]))
            h[:, r0:r1] = (1.0 - u) * prev_h + u * cand
    return h


# ---------------------------------------------------------------- pooling, characters

def mean_pool_forward(x, rows, lengths):
    """x (N, d) packed, rows (B, T), lengths (B,) -> (B, d) mean over each sequence's real steps."""
    valid = rows >= 0
    sums = np.zeros((len(lengths), x.shape[1]), dtype=x.dtype)
    np.add.at(sums, np.nonzero(valid)[0], x[rows[valid]])
    return (sums / lengths[:, None]).astype(x.dtype)


def max_pool_forward(x, rows, lengths):
    """-> (B, d) max over real steps (the kernel's argmax is only for backward: None)."""
    out = np.empty((len(lengths), x.shape[1]), dtype=x.dtype)
    for b, n in enumerate(lengths.tolist()):
        out[b] = x[rows[b, :n]].max(axis=0)
    return out, None


def last_pool_forward(x, last, first, split):
    """-> (B, d): columns [:split] at each sequence's last row, [split:] at its first."""
    return np.concatenate([x[last, :split], x[first, split:]], axis=1)


def char_cnn_forward(P, b, chars):
    """P (C, k, F) folded filters, b (F,), chars (N, W) -> (N, F) max over each word's positions, None."""
    _, k, F = P.shape
    N, W = chars.shape
    h = k // 2
    length = (chars != 0).sum(axis=1)                                  # characters are left-aligned
    padded = np.zeros((N, W + 2 * h), dtype=chars.dtype)
    padded[:, h:h + W] = chars
    z = np.broadcast_to(b, (N, W, F)).copy()
    for o in range(k):
        z += P[padded[:, o:o + W], o]                                  # z[n, p] += P[c_{p+o-h}, o]
    z[np.arange(W)[None, :] >= length[:, None]] = -np.inf              # positions past the word
    y = z.max(axis=1)
    y[length == 0] = b                                                 # an empty word: the bias
    return y.astype(P.dtype), None


# ---------------------------------------------------------------- CRF decoding

def _steps(offsets, lengths):
    """(t, first row, running count) per time step of a packed batch (ranks sorted by length)."""
    for t in range(len(offsets) - 1):
        n = int((lengths > t).sum())
        if n == 0:
            return
        yield t, int(offsets[t]), n


def _chain(em, start, trans, steps, reduce):
    """The forward recursion over a packed batch: a[0] = start + em[0], a[t] = reduce(a[t-1] + trans) + em[t]."""
    a = np.empty_like(em)
    for t, r0, n in steps:
        if t == 0:
            a[r0:r0 + n] = start + em[r0:r0 + n]
        else:
            p0 = steps[t - 1][1]
            a[r0:r0 + n] = reduce(a[p0:p0 + n, :, None] + trans, r0, n) + em[r0:r0 + n]   # (n, i, j) -> (n, j)
    return a


def _float64(em, trans, start, end):
    return tuple(np.asarray(a, dtype=np.float64) for a in (em, trans, start, end))


def _last_rows(offsets, lengths):
    return np.array([offsets[lengths[r] - 1] + r for r in range(len(lengths))], dtype=np.int64)


def crf_viterbi(em, trans, start, end, offsets, lengths):
    """-> best (N,) tag per row of each sequence's highest-scoring path, score (B,)."""
    em, trans, start, end = _float64(em, trans, start, end)
    N, K = em.shape
    back = np.zeros((N, K), dtype=np.int64)

    def best_previous(cand, r0, n):
        back[r0:r0 + n] = cand.argmax(axis=1)
        return cand.max(axis=1)

    delta = _chain(em, start, trans, list(_steps(offsets, lengths)), best_previous)
    final = delta[_last_rows(offsets, lengths)] + end
    tag = final.argmax(axis=1)
    best = np.empty(N, dtype=np.int64)
    for r in range(len(lengths)):
        j = int(tag[r])
        for t in range(int(lengths[r]) - 1, -1, -1):                   # follow the back pointers
            row = int(offsets[t]) + r
            best[row] = j
            j = int(back[row, j])
    return best, final.max(axis=1)


def crf_marginals(em, trans, start, end, offsets, lengths):
    """-> p (N, K) = p(y_t = j | x) per row (forward-backward in log space), log Z (B,)."""
    em, trans, start, end = _float64(em, trans, start, end)
    N, K = em.shape
    steps = list(_steps(offsets, lengths))
    alpha = _chain(em, start, trans, steps, lambda cand, r0, n: _lse(cand, axis=1))
    beta = np.empty((N, K))
    for t, r0, n in reversed(steps):
        ends = lengths[:n] == t + 1                                    # sequences whose last step is t
        nxt = np.zeros((n, K))
        if t + 1 < len(steps):
            q0, m = steps[t + 1][1], steps[t + 1][2]
            nxt[:m] = _lse(trans[None] + (em[q0:q0 + m] + beta[q0:q0 + m])[:, None, :], axis=2)
        beta[r0:r0 + n] = np.where(ends[:, None], end[None, :], nxt)
    log_z = _lse(alpha[_last_rows(offsets, lengths)] + end, axis=1)
    seq = np.empty(N, dtype=np.int64)
    for t, r0, n in steps:
        seq[r0:r0 + n] = np.arange(n)
    return np.exp(alpha + beta - log_z[seq][:, None]), log_z


def _lse(a, axis):
    m = a.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
