"""LSTM over packed sequences: forward and backward through time, side by side.

Per step t, rows of the n_t running sequences (contract: kernels/__init__.py):

    1  a   = xp_t + h_{t-1} W_h                (n_t, 4H), gate blocks (i, f, g, o)
    2  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
    3  c_t = f * c_{t-1} + i * g               (c_{-1} = h_{-1} = 0)
    4  h_t = o * tanh(c_t)

cache (S, N, 5H): per row [i | f | g | o | c], the activated gates and the cell
state; tanh(c) is recomputed in backward (one vectorised call per element).
"""
import numpy as np
from numba import njit, prange

from ._math import (
    JIT,
    addmm_nt,
    dsigmoid,
    dtanh,
    rank_chunks,
    sigmoid,
    step_rows,
    tanh,
    transpose_each,
    weight_grads,
)

G = 4  # gates


@njit(**JIT)
def lstm_forward(xp, w_h, offsets):
    """xp (S, N, 4H), w_h (S, H, 4H), offsets (T+1,) -> h (S, N, H), cache (S, N, 5H)."""
    xp, w_h = np.ascontiguousarray(xp), np.ascontiguousarray(w_h)  # no-op views for C arrays
    S, N, _ = xp.shape
    H = w_h.shape[1]
    h = np.empty((S, N, H), xp.dtype)
    cache = np.empty((S, N, 5 * H), xp.dtype)
    _forward_items(h, cache, xp, transpose_each(w_h), offsets, rank_chunks(offsets, S))
    return h, cache


@njit(**JIT)
def lstm_backward(dh, xp, w_h, offsets, h, cache):
    """dh (S, N, H) + forward's arrays -> dxp (S, N, 4H), dw_h (S, H, 4H)."""
    w_h, h, cache = np.ascontiguousarray(w_h), np.ascontiguousarray(h), np.ascontiguousarray(cache)
    dxp = np.empty(xp.shape, xp.dtype)  # d loss / d a, step 1's pre-activations
    dh_all = dh.copy()  # (S, N, H): dh, plus the recurrent part once step t+1 is done
    _backward_items(dxp, dh_all, cache, w_h, offsets, rank_chunks(offsets, h.shape[0]))
    return dxp, weight_grads(h, dxp, offsets)  # 1: dW_h = sum_t h_{t-1}^T da_t


@njit(parallel=True, **JIT)
def _forward_items(h, cache, xp, wt, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of h[s], cache[s]."""
    C = len(bounds) - 1
    for item in prange(xp.shape[0] * C):
        s, k = item // C, item % C
        _forward_chunk(h[s], cache[s], xp[s], wt[s], offsets, bounds[k], bounds[k + 1])


@njit(parallel=True, **JIT)
def _backward_items(dxp, dh, cache, w_h, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of dxp[s], dh[s]."""
    C = len(bounds) - 1
    for item in prange(dxp.shape[0] * C):
        s, k = item // C, item % C
        _backward_chunk(dxp[s], dh[s], cache[s], w_h[s], offsets, bounds[k], bounds[k + 1])


@njit(**JIT)
def _forward_chunk(h, cache, xp, wt, offsets, r0, r1):
    """Serial time loop over ranks r0:r1 of one stream. h (N, H), cache (N, 5H), xp (N, 4H), wt (4H, H)."""
    a = np.empty((r1 - r0, xp.shape[1]), xp.dtype)  # (n, 4H) step 1's pre-activations
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            break
        if t == 0:  # h_{-1} = 0: a = xp
            _cell_forward(h[row:row + n], cache[row:row + n], xp[row:row + n], cache[row:row + n], False)
        else:
            addmm_nt(a[:n], xp[row:row + n], h[prev:prev + n], wt)  # 1
            _cell_forward(h[row:row + n], cache[row:row + n], a[:n], cache[prev:prev + n], True)


@njit(**JIT)
def _backward_chunk(dxp, dh, cache, w_h, offsets, r0, r1):
    """Reverse time loop over ranks r0:r1. dxp (N, 4H); dh (N, H) gains step t's recurrent part."""
    H = dh.shape[1]
    dc = np.zeros((r1 - r0, H), dh.dtype)  # (n, H) d loss / d c_t from step t+1 (3: c_{t+1} = f c_t + ...)
    for t in range(len(offsets) - 2, -1, -1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            continue
        _cell_backward(dxp[row:row + n], dc[:n], dh[row:row + n], cache[row:row + n], cache[prev:prev + n], t > 0)
        if t > 0:  # 1: a = ... + h_{t-1} W_h  ->  dh_{t-1} += da W_h^T
            addmm_nt(dh[prev:prev + n], dh[prev:prev + n], dxp[row:row + n], w_h)


@njit(**JIT)
def _cell_forward(h, cache, a, cache_prev, has_prev):
    """Steps 2-4 fused, one pass over a (n, 4H); c_{t-1} from cache_prev[:, 4H:] if has_prev."""
    H = h.shape[1]
    zero = a.dtype.type(0)
    for r in range(a.shape[0]):
        for j in range(H):
            i = sigmoid(a[r, j])  # 2
            f = sigmoid(a[r, H + j])
            g = tanh(a[r, 2 * H + j])
            o = sigmoid(a[r, 3 * H + j])
            c = f * (cache_prev[r, 4 * H + j] if has_prev else zero) + i * g  # 3
            h[r, j] = o * tanh(c)  # 4
            cache[r, j], cache[r, H + j], cache[r, 2 * H + j], cache[r, 3 * H + j] = i, f, g, o
            cache[r, 4 * H + j] = c


@njit(**JIT)
def _cell_backward(da, dc, dh, cache, cache_prev, has_prev):
    """Steps 4-2 backwards, one pass. da (n, 4H) out; dc (n, H) in: from t+1, out: to t-1."""
    H = dh.shape[1]
    zero = dh.dtype.type(0)
    for r in range(dh.shape[0]):
        for j in range(H):
            i, f, g, o = cache[r, j], cache[r, H + j], cache[r, 2 * H + j], cache[r, 3 * H + j]
            tc = tanh(cache[r, 4 * H + j])
            c_prev = cache_prev[r, 4 * H + j] if has_prev else zero
            dct = dc[r, j] + dh[r, j] * o * dtanh(tc)  # 4: h = o tanh(c), plus c's use at t+1
            da[r, j] = dct * g * dsigmoid(i)  # 3: c = f c_prev + i g;  2: i = sigmoid(a_i)
            da[r, H + j] = dct * c_prev * dsigmoid(f)  # 3, 2: f
            da[r, 2 * H + j] = dct * i * dtanh(g)  # 3, 2: g = tanh(a_g)
            da[r, 3 * H + j] = dh[r, j] * tc * dsigmoid(o)  # 4, 2: o
            dc[r, j] = dct * f  # 3: d c_{t-1}
