"""LSTM over packed sequences: forward and backward through time, side by side.

Per step t, rows of the n_t running sequences (contract: kernels/__init__.py):

    1  a   = xp_t + h_{t-1} W_h                (n_t, 4H), gate blocks (i, f, g, o)
    2  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
    3  c_t = f * c_{t-1} + i * g               (c_{-1} = h_{-1} = 0)
    4  h_t = o * tanh(c_t)

cache (S, N, 5H): per row [i | f | g | o | c], the activated gates and the cell
state; step 1 writes a straight into the gate columns, step 2 activates them in
place. tanh(c) is recomputed in backward.

The elementwise steps run row by row as short loops that each write one
stream of memory: LLVM vectorises a loop only when its runtime aliasing checks
stay few (about 8), and one fused loop writing h and five cache columns needs
more, runs scalar, and costs 7x (17 against 2.5 ns per unit and step).
"""
import numpy as np
from numba import njit, prange

from ._math import (
    JIT,
    add_weight_grad,
    addmm_nt,
    backward_setup,
    copy_cols,
    dsigmoid,
    dtanh,
    forward_setup,
    sigmoid,
    step_rows,
    sum_chunks,
    tanh,
)


@njit(**JIT)
def lstm_forward(xp, w_h, offsets):
    """xp (S, N, 4H), w_h (S, H, 4H), offsets (T+1,) -> h (S, N, H), cache (S, N, 5H)."""
    xp, w_h = np.ascontiguousarray(xp), np.ascontiguousarray(w_h)  # no-op views for C arrays
    h, cache, wt, bounds = forward_setup(xp, w_h, offsets, 5)
    _forward_items(h, cache, xp, wt, offsets, bounds)
    return h, cache


@njit(**JIT)
def lstm_backward(dh, xp, w_h, offsets, h, cache):
    """dh (S, N, H) + forward's arrays -> dxp (S, N, 4H) (d loss / d a, step 1), dw_h (S, H, 4H)."""
    w_h, h, cache = np.ascontiguousarray(w_h), np.ascontiguousarray(h), np.ascontiguousarray(cache)
    dxp, dh_all, dw_parts, bounds = backward_setup(dh, xp, w_h, offsets)
    _backward_items(dxp, dw_parts, dh_all, h, cache, w_h, offsets, bounds)
    return dxp, sum_chunks(dw_parts, len(xp))


@njit(parallel=True, **JIT)
def _forward_items(h, cache, xp, wt, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of h[s], cache[s]."""
    C = len(bounds) - 1
    for item in prange(xp.shape[0] * C):
        s, k = item // C, item % C
        _forward_chunk(h[s], cache[s], xp[s], wt[s], offsets, bounds[k], bounds[k + 1])


@njit(parallel=True, **JIT)
def _backward_items(dxp, dw_parts, dh, h, cache, w_h, offsets, bounds):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of dxp[s], dh[s],
    and its own dw_parts[item]."""
    C = len(bounds) - 1
    for item in prange(dxp.shape[0] * C):
        s, r0, r1 = item // C, bounds[item % C], bounds[item % C + 1]
        _backward_chunk(dxp[s], dh[s], cache[s], w_h[s], offsets, r0, r1)
        add_weight_grad(dw_parts[item], h[s], dxp[s], offsets, r0, r1)  # 1: dW_h = sum_t h_{t-1}^T da_t


@njit(**JIT)
def _forward_chunk(h, cache, xp, wt, offsets, r0, r1):
    """Serial time loop over ranks r0:r1 of one stream. h (N, H), cache (N, 5H), xp (N, 4H), wt (4H, H)."""
    G4 = xp.shape[1]
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            break
        if t == 0:  # h_{-1} = 0: a = xp
            copy_cols(cache[row:row + n], xp[row:row + n])
        else:  # 1, into the gate columns
            addmm_nt(cache[row:row + n, :G4], xp[row:row + n], h[prev:prev + n], 0, wt)
        _cell_forward(h[row:row + n], cache[row:row + n], cache[prev:prev + n], t > 0)


@njit(**JIT)
def _backward_chunk(dxp, dh, cache, w_h, offsets, r0, r1):
    """Reverse time loop over ranks r0:r1. dxp (N, 4H); dh (N, H) gains step t's recurrent part."""
    dc = np.zeros((r1 - r0, dh.shape[1]), dh.dtype)  # (n, H) d loss / d c_t, from step t+1's 3
    for t in range(len(offsets) - 2, -1, -1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            continue
        _cell_backward(dxp[row:row + n], dc[:n], dh[row:row + n], cache[row:row + n], cache[prev:prev + n], t > 0)
        if t > 0:  # 1: a = ... + h_{t-1} W_h  ->  dh_{t-1} += da W_h^T
            addmm_nt(dh[prev:prev + n], dh[prev:prev + n], dxp[row:row + n], 0, w_h)


@njit(**JIT)
def _cell_forward(h, cache, cache_prev, has_prev):
    """Steps 2-4, the gates activated in place in cache[:, :4H]; c_{t-1} from cache_prev."""
    H = h.shape[1]
    for r in range(h.shape[0]):
        hr, cr = h[r], cache[r]
        i, f, g, o, c = cr[:H], cr[H:2 * H], cr[2 * H:3 * H], cr[3 * H:4 * H], cr[4 * H:]
        i_f, c_prev = cr[:2 * H], cache_prev[r, 4 * H:]
        for j in range(2 * H):  # 2
            i_f[j] = sigmoid(i_f[j])
        for j in range(H):
            g[j] = tanh(g[j])
        for j in range(H):
            o[j] = sigmoid(o[j])
        if has_prev:
            for j in range(H):  # 3
                c[j] = f[j] * c_prev[j] + i[j] * g[j]
        else:
            for j in range(H):
                c[j] = i[j] * g[j]
        for j in range(H):  # 4
            hr[j] = o[j] * tanh(c[j])


@njit(**JIT)
def _cell_backward(da, dc, dh, cache, cache_prev, has_prev):
    """Steps 4-2 backwards. da (n, 4H) out; dc (n, H) in: d c_t from t+1, out: d c_{t-1}."""
    H = dh.shape[1]
    for r in range(dh.shape[0]):
        dcr, dhr, cr, dar = dc[r], dh[r], cache[r], da[r]
        i, f, g, o, c = cr[:H], cr[H:2 * H], cr[2 * H:3 * H], cr[3 * H:4 * H], cr[4 * H:]
        da_i, da_f, da_g, da_o = dar[:H], dar[H:2 * H], dar[2 * H:3 * H], dar[3 * H:]
        c_prev = cache_prev[r, 4 * H:]
        for j in range(H):  # 4: h = o tanh(c), plus c's use at t+1 (dc from 3 of step t+1)
            dcr[j] += dhr[j] * o[j] * dtanh(tanh(c[j]))
        for j in range(H):  # 4, 2: o = sigmoid(a_o)
            da_o[j] = dhr[j] * tanh(c[j]) * dsigmoid(o[j])
        for j in range(H):  # 3: c = f c_prev + i g;  2: i = sigmoid(a_i)
            da_i[j] = dcr[j] * g[j] * dsigmoid(i[j])
        if has_prev:
            for j in range(H):  # 3, 2: f
                da_f[j] = dcr[j] * c_prev[j] * dsigmoid(f[j])
        else:
            for j in range(H):
                da_f[j] = 0
        for j in range(H):  # 3, 2: g = tanh(a_g)
            da_g[j] = dcr[j] * i[j] * dtanh(g[j])
        for j in range(H):  # 3: d c_{t-1}
            dcr[j] *= f[j]
