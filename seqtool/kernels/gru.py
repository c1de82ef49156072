"""GRU (the seed's formula) over packed sequences: forward and backward through time, side by side.

Per step t, rows of the n_t running sequences (contract: kernels/__init__.py),
W_h = [W_r | W_u | W_c] by column blocks of H, h_{-1} = 0:

    1  a_ru = xp_ru + h_{t-1} [W_r | W_u]      (n_t, 2H)
    2  r, u = sigmoid(a_ru)
    3  a_c  = xp_c + (r * h_{t-1}) W_c         (n_t, H)   the candidate sees the gated state
    4  c    = tanh(a_c)
    5  h_t  = (1 - u) * h_{t-1} + u * c

This is not PyTorch's GRU (there r gates (h W_c + b_hc), after the product).
cache (S, N, 3H): per row [r | u | c].
"""
import numpy as np
from numba import njit, prange

from ._math import (
    JIT,
    addmm_nt,
    dsigmoid,
    dtanh,
    prev_rows,
    rank_chunks,
    sigmoid,
    step_rows,
    tanh,
    transpose_each,
    weight_grad,
)


@njit(**JIT)
def gru_forward(xp, w_h, offsets):
    """xp (S, N, 3H), w_h (S, H, 3H), offsets (T+1,) -> h (S, N, H), cache (S, N, 3H)."""
    xp, w_h = np.ascontiguousarray(xp), np.ascontiguousarray(w_h)  # no-op views for C arrays
    S, N, _ = xp.shape
    H = w_h.shape[1]
    h = np.empty((S, N, H), xp.dtype)
    cache = np.empty((S, N, 3 * H), xp.dtype)
    _forward_items(h, cache, xp, transpose_each(w_h), offsets, rank_chunks(offsets, S))
    return h, cache


@njit(**JIT)
def gru_backward(dh, xp, w_h, offsets, h, cache):
    """dh (S, N, H) + forward's arrays -> dxp (S, N, 3H), dw_h (S, H, 3H)."""
    w_h, h, cache = np.ascontiguousarray(w_h), np.ascontiguousarray(h), np.ascontiguousarray(cache)
    dxp = np.zeros(xp.shape, xp.dtype)  # d loss / d (a_ru, a_c), steps 1 and 3 (zero: step 0's a_r)
    dh_all = dh.copy()  # (S, N, H): dh, plus the recurrent part once step t+1 is done
    w_ru, w_c = _split(w_h)  # (S, H, 2H), (S, H, H) contiguous
    _backward_items(dxp, dh_all, h, cache, w_ru, w_c, offsets, rank_chunks(offsets, h.shape[0]))
    return dxp, _weight_grads(h, cache, dxp, offsets)


@njit(parallel=True, **JIT)
def _forward_items(h, cache, xp, wt, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of h[s], cache[s]."""
    C = len(bounds) - 1
    for item in prange(xp.shape[0] * C):
        s, k = item // C, item % C
        _forward_chunk(h[s], cache[s], xp[s], wt[s], offsets, bounds[k], bounds[k + 1])


@njit(parallel=True, **JIT)
def _backward_items(dxp, dh, h, cache, w_ru, w_c, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of dxp[s], dh[s]."""
    C = len(bounds) - 1
    for item in prange(dxp.shape[0] * C):
        s, k = item // C, item % C
        _backward_chunk(dxp[s], dh[s], h[s], cache[s], w_ru[s], w_c[s], offsets, bounds[k], bounds[k + 1])


@njit(**JIT)
def _forward_chunk(h, cache, xp, wt, offsets, r0, r1):
    """Serial time loop over ranks r0:r1 of one stream. h (N, H), cache, xp (N, 3H), wt (3H, H)."""
    H = h.shape[1]
    a = np.empty((r1 - r0, 3 * H), xp.dtype)  # (n, 3H) pre-activations a_ru | a_c
    rh = np.zeros((r1 - r0, H), xp.dtype)  # (n, H) r * h_{t-1}
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            break
        if t == 0:  # h_{-1} = 0: a = xp, and h_{-1} is never read
            _gates_forward(cache[row:row + n], rh[:n], xp[row:row + n], h[row:row + n], False)
            _state_forward(h[row:row + n], cache[row:row + n], xp[row:row + n], h[row:row + n], False)
            continue
        hp = h[prev:prev + n]
        addmm_nt(a[:n, :2 * H], xp[row:row + n, :2 * H], hp, wt[:2 * H])  # 1
        _gates_forward(cache[row:row + n], rh[:n], a[:n], hp, True)  # 2
        addmm_nt(a[:n, 2 * H:], xp[row:row + n, 2 * H:], rh[:n], wt[2 * H:])  # 3
        _state_forward(h[row:row + n], cache[row:row + n], a[:n], hp, True)  # 4, 5


@njit(**JIT)
def _backward_chunk(dxp, dh, h, cache, w_ru, w_c, offsets, r0, r1):
    """Reverse time loop over ranks r0:r1. dxp (N, 3H); dh (N, H) gains step t's recurrent part."""
    H = h.shape[1]
    drh = np.empty((r1 - r0, H), h.dtype)  # (n, H) d loss / d (r * h_{t-1})
    for t in range(len(offsets) - 2, -1, -1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            continue
        # t = 0: h_{-1} = 0, so d a_r = 0 (dxp starts zeroed) and nothing flows further back
        hp = h[prev:prev + n] if t > 0 else h[row:row + n]  # unread at t = 0
        _state_backward(dxp[row:row + n], dh[prev:prev + n], dh[row:row + n], cache[row:row + n], hp, t > 0)
        if t == 0:
            continue
        for r in range(n):
            for j in range(H):
                drh[r, j] = 0
        addmm_nt(drh[:n], drh[:n], dxp[row:row + n, 2 * H:], w_c)  # 3: d(r h) = da_c W_c^T
        _gates_backward(dxp[row:row + n], dh[prev:prev + n], drh[:n], cache[row:row + n], hp)
        addmm_nt(dh[prev:prev + n], dh[prev:prev + n], dxp[row:row + n, :2 * H], w_ru)  # 1: dh_{t-1} += da_ru W_ru^T


@njit(**JIT)
def _gates_forward(cache, rh, a, hp, has_prev):
    """2: r, u = sigmoid(a_ru) into cache[:, :2H]; rh = r * h_{t-1} (left as is without h_{t-1})."""
    H = rh.shape[1]
    for i in range(a.shape[0]):
        for j in range(H):
            r = sigmoid(a[i, j])
            cache[i, j], cache[i, H + j] = r, sigmoid(a[i, H + j])
            if has_prev:
                rh[i, j] = r * hp[i, j]


@njit(**JIT)
def _state_forward(h, cache, a, hp, has_prev):
    """4, 5: c = tanh(a_c) into cache[:, 2H:]; h = (1 - u) h_{t-1} + u c. h may be hp when not has_prev."""
    H = h.shape[1]
    zero = a.dtype.type(0)
    for i in range(a.shape[0]):
        for j in range(H):
            u, c = cache[i, H + j], tanh(a[i, 2 * H + j])
            cache[i, 2 * H + j] = c
            h_prev = hp[i, j] if has_prev else zero
            h[i, j] = h_prev + u * (c - h_prev)


@njit(**JIT)
def _state_backward(da, dh_prev, dh, cache, hp, has_prev):
    """5, 4 backwards: da_u, da_c into da (n, 3H); dh_prev += dh (1 - u) when has_prev."""
    H = dh.shape[1]
    zero, one = dh.dtype.type(0), dh.dtype.type(1)
    for i in range(dh.shape[0]):
        for j in range(H):
            u, c = cache[i, H + j], cache[i, 2 * H + j]
            g = dh[i, j]
            h_prev = hp[i, j] if has_prev else zero
            da[i, H + j] = g * (c - h_prev) * dsigmoid(u)  # 5: h = h_prev + u (c - h_prev);  2: u
            da[i, 2 * H + j] = g * u * dtanh(c)  # 5, 4: c = tanh(a_c)
            if has_prev:
                dh_prev[i, j] += g * (one - u)  # 5: h_prev's direct path


@njit(**JIT)
def _gates_backward(da, dh_prev, drh, cache, hp):
    """3, 2 backwards: rh = r * h_{t-1}  ->  da_r into da[:, :H]; dh_prev += drh * r."""
    H = drh.shape[1]
    for i in range(drh.shape[0]):
        for j in range(H):
            r = cache[i, j]
            da[i, j] = drh[i, j] * hp[i, j] * dsigmoid(r)  # 3: d r = drh * h_prev;  2: r = sigmoid(a_r)
            dh_prev[i, j] += drh[i, j] * r  # 3: d h_prev through r * h_prev


@njit(**JIT)
def _split(w_h):
    """w_h (S, H, 3H) -> W_ru (S, H, 2H), W_c (S, H, H) contiguous: the bt of the backward products."""
    S, H, _ = w_h.shape
    w_ru = np.empty((S, H, 2 * H), w_h.dtype)
    w_c = np.empty((S, H, H), w_h.dtype)
    for s in range(S):
        for k in range(H):
            for j in range(2 * H):
                w_ru[s, k, j] = w_h[s, k, j]
            for j in range(H):
                w_c[s, k, j] = w_h[s, k, 2 * H + j]
    return w_ru, w_c


@njit(**JIT)
def _weight_grads(h, cache, dxp, offsets):
    """1, 3: dW_ru = h_prev^T da_ru, dW_c = (r h_prev)^T da_c over rows of steps >= 1 -> (S, H, 3H)."""
    S, N, H = h.shape
    B = offsets[1] - offsets[0]
    dw = np.empty((S, H, 3 * H), h.dtype)
    d_ru = np.empty((H, 2 * H), h.dtype)  # contiguous products, copied into dw
    d_c = np.empty((H, H), h.dtype)
    for s in range(S):  # serial over streams: each product uses BLAS's own threads
        hp = prev_rows(h[s], offsets)  # (N-B, H)
        rhp = np.empty_like(hp)
        da_ru = np.empty((N - B, 2 * H), h.dtype)
        da_c = np.empty((N - B, H), h.dtype)
        for i in range(N - B):
            for j in range(H):
                rhp[i, j] = cache[s, B + i, j] * hp[i, j]
                da_c[i, j] = dxp[s, B + i, 2 * H + j]
            for j in range(2 * H):
                da_ru[i, j] = dxp[s, B + i, j]
        weight_grad(d_ru, hp, da_ru)
        weight_grad(d_c, rhp, da_c)
        for k in range(H):
            for j in range(2 * H):
                dw[s, k, j] = d_ru[k, j]
            for j in range(H):
                dw[s, k, 2 * H + j] = d_c[k, j]
    return dw
