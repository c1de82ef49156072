"""GRU (the seed's formula) over packed sequences: forward and backward through time, side by side.

Per step t, rows of the n_t running sequences (contract: kernels/__init__.py),
W_h = [W_r | W_u | W_c] by column blocks of H, h_{-1} = 0:

    1  a_ru = xp_ru + h_{t-1} [W_r | W_u]      (n_t, 2H)
    2  r, u = sigmoid(a_ru)
    3  a_c  = xp_c + (r * h_{t-1}) W_c         (n_t, H)   the candidate sees the gated state
    4  c    = tanh(a_c)
    5  h_t  = (1 - u) * h_{t-1} + u * c

This is not PyTorch's GRU (there r gates (h W_c + b_hc), after the product).
cache (S, N, 3H): per row [r | u | c]; steps 1 and 3 write their products into
these columns and steps 2 and 4 activate them in place. Elementwise loops write
one stream each, so that LLVM vectorises them (see lstm.py).
"""
import numpy as np
from numba import njit, prange

from ._math import (
    JIT,
    addmm_nt,
    backward_setup,
    copy_cols,
    dsigmoid,
    dtanh,
    forward_setup,
    gather_t,
    sigmoid,
    step_rows,
    sum_chunks,
    tanh,
)


@njit(**JIT)
def gru_forward(xp, w_h, offsets):
    """xp (S, N, 3H), w_h (S, H, 3H), offsets (T+1,) -> h (S, N, H), cache (S, N, 3H)."""
    xp, w_h = np.ascontiguousarray(xp), np.ascontiguousarray(w_h)  # no-op views for C arrays
    h, cache, wt, bounds = forward_setup(xp, w_h, offsets, 3)
    _forward_items(h, cache, xp, wt, offsets, bounds)
    return h, cache


@njit(**JIT)
def gru_backward(dh, xp, w_h, offsets, h, cache):
    """dh (S, N, H) + forward's arrays -> dxp (S, N, 3H) (d loss / d a_ru, a_c: steps 1, 3), dw_h (S, H, 3H)."""
    w_h, h, cache = np.ascontiguousarray(w_h), np.ascontiguousarray(h), np.ascontiguousarray(cache)
    dxp, dh_all, dw_parts, bounds = backward_setup(dh, xp, w_h, offsets)
    w_ru, w_c = _split(w_h)  # (S, H, 2H), (S, H, H) contiguous
    _backward_items(dxp, dw_parts, dh_all, h, cache, w_ru, w_c, offsets, bounds)
    return dxp, sum_chunks(dw_parts, len(xp))


@njit(parallel=True, **JIT)
def _forward_items(h, cache, xp, wt, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of h[s], cache[s]."""
    C = len(bounds) - 1
    for item in prange(xp.shape[0] * C):
        s, k = item // C, item % C
        _forward_chunk(h[s], cache[s], xp[s], wt[s], offsets, bounds[k], bounds[k + 1])


@njit(parallel=True, **JIT)
def _backward_items(dxp, dw_parts, dh, h, cache, w_ru, w_c, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of dxp[s], dh[s],
    and its own dw_parts[item]."""
    C = len(bounds) - 1
    for item in prange(dxp.shape[0] * C):
        s, r0, r1 = item // C, bounds[item % C], bounds[item % C + 1]
        _backward_chunk(dxp[s], dh[s], h[s], cache[s], w_ru[s], w_c[s], offsets, r0, r1)
        _add_weight_grad(dw_parts[item], h[s], cache[s], dxp[s], offsets, r0, r1)


@njit(**JIT)
def _forward_chunk(h, cache, xp, wt, offsets, r0, r1):
    """Serial time loop over ranks r0:r1 of one stream. h (N, H), cache, xp (N, 3H), wt (3H, H)."""
    H = h.shape[1]
    rh = np.empty((r1 - r0, H), xp.dtype)  # (n, H) r * h_{t-1}
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            break
        a = cache[row:row + n]
        if t == 0:  # h_{-1} = 0: a = xp, and r is not needed
            copy_cols(a, xp[row:row + n])
            _gates_forward(a)
            _state_forward(h[row:row + n], a, h[row:row + n], False)
            continue
        hp = h[prev:prev + n]
        addmm_nt(a[:, :2 * H], xp[row:row + n, :2 * H], hp, 0, wt[:2 * H])  # 1, into the cache's r, u columns
        _gates_forward(a)  # 2
        for i in range(n):
            for j in range(H):  # 3: r * h_{t-1}
                rh[i, j] = a[i, j] * hp[i, j]
        addmm_nt(a[:, 2 * H:], xp[row:row + n, 2 * H:], rh[:n], 0, wt[2 * H:])  # 3, into the cache's c columns
        _state_forward(h[row:row + n], a, hp, True)  # 4, 5


@njit(**JIT)
def _backward_chunk(dxp, dh, h, cache, w_ru, w_c, offsets, r0, r1):
    """Reverse time loop over ranks r0:r1. dxp (N, 3H); dh (N, H) gains step t's recurrent part."""
    H = h.shape[1]
    drh = np.empty((r1 - r0, H), h.dtype)  # (n, H) d loss / d (r * h_{t-1})
    for t in range(len(offsets) - 2, -1, -1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            continue
        if t == 0:  # h_{-1} = 0: d a_r = 0 and nothing flows further back
            _state_backward(dxp[row:row + n], dh[row:row + n], dh[row:row + n], cache[row:row + n],
                            h[row:row + n], False)
            for i in range(row, row + n):
                for j in range(H):
                    dxp[i, j] = 0
            continue
        hp = h[prev:prev + n]
        _state_backward(dxp[row:row + n], dh[prev:prev + n], dh[row:row + n], cache[row:row + n], hp, True)
        for i in range(n):
            for j in range(H):
                drh[i, j] = 0
        addmm_nt(drh[:n], drh[:n], dxp[row:row + n], 2 * H, w_c)  # 3: d(r h) = da_c W_c^T
        _gates_backward(dxp[row:row + n], dh[prev:prev + n], drh[:n], cache[row:row + n], hp)
        addmm_nt(dh[prev:prev + n], dh[prev:prev + n], dxp[row:row + n], 0, w_ru)  # 1: dh_{t-1} += da_ru W_ru^T


@njit(**JIT)
def _gates_forward(cache):
    """2: r, u = sigmoid(a_ru), in place in cache[:, :2H]."""
    H = cache.shape[1] // 3
    for i in range(cache.shape[0]):
        ru = cache[i, :2 * H]
        for j in range(2 * H):
            ru[j] = sigmoid(ru[j])


@njit(**JIT)
def _state_forward(h, cache, hp, has_prev):
    """4, 5: c = tanh(a_c) in place in cache[:, 2H:]; h = (1 - u) h_{t-1} + u c."""
    H = h.shape[1]
    for i in range(h.shape[0]):
        hr, hpr, u, c = h[i], hp[i], cache[i, H:2 * H], cache[i, 2 * H:]
        for j in range(H):  # 4
            c[j] = tanh(c[j])
        if has_prev:
            for j in range(H):  # 5: h = h_prev + u (c - h_prev)
                hr[j] = hpr[j] + u[j] * (c[j] - hpr[j])
        else:
            for j in range(H):
                hr[j] = u[j] * c[j]


@njit(**JIT)
def _state_backward(da, dh_prev, dh, cache, hp, has_prev):
    """5, 4 backwards: da_u, da_c into da (n, 3H); dh_prev += dh (1 - u) when has_prev."""
    H = dh.shape[1]
    one = dh.dtype.type(1)
    for i in range(dh.shape[0]):
        dhr, hpr, dpr, u, c = dh[i], hp[i], dh_prev[i], cache[i, H:2 * H], cache[i, 2 * H:]
        da_u, da_c = da[i, H:2 * H], da[i, 2 * H:]
        for j in range(H):  # 5, 4: c = tanh(a_c)
            da_c[j] = dhr[j] * u[j] * dtanh(c[j])
        if has_prev:
            for j in range(H):  # 5: h = h_prev + u (c - h_prev);  2: u = sigmoid(a_u)
                da_u[j] = dhr[j] * (c[j] - hpr[j]) * dsigmoid(u[j])
            for j in range(H):  # 5: h_prev's direct path
                dpr[j] += dhr[j] * (one - u[j])
        else:
            for j in range(H):
                da_u[j] = dhr[j] * c[j] * dsigmoid(u[j])


@njit(**JIT)
def _gates_backward(da, dh_prev, drh, cache, hp):
    """3, 2 backwards: rh = r * h_{t-1}  ->  da_r into da[:, :H]; dh_prev += drh * r."""
    H = drh.shape[1]
    for i in range(drh.shape[0]):
        da_r, dpr, dr, r, hpr = da[i, :H], dh_prev[i], drh[i], cache[i, :H], hp[i]
        for j in range(H):  # 3: d r = drh * h_prev;  2: r = sigmoid(a_r)
            da_r[j] = dr[j] * hpr[j] * dsigmoid(r[j])
        for j in range(H):  # 3: d h_prev through r * h_prev
            dpr[j] += dr[j] * r[j]


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
def _add_weight_grad(dw, h, cache, dxp, offsets, r0, r1):
    """1, 3: dW_ru += h_{t-1}^T da_ru, dW_c += (r h_{t-1})^T da_c over steps t >= 1 of ranks r0:r1."""
    H = h.shape[1]
    hT = gather_t(h, H, offsets, r0, r1, 1)  # (H, m) h_{t-1}
    dT = gather_t(dxp, 3 * H, offsets, r0, r1, 0)  # (3H, m) da
    addmm_nt(dw[:, :2 * H], dw[:, :2 * H], hT, 0, dT[:2 * H])
    rT = gather_t(cache, H, offsets, r0, r1, 0)  # (H, m) r
    for k in range(H):
        for q in range(hT.shape[1]):
            hT[k, q] *= rT[k, q]  # now (r h_{t-1})^T
    addmm_nt(dw[:, 2 * H:], dw[:, 2 * H:], hT, 0, dT[2 * H:])
