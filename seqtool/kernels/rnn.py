"""Vanilla RNN over packed sequences: forward and backward through time, side by side.

Per step t, rows of the n_t running sequences (contract: kernels/__init__.py):

    1  a   = xp_t + h_{t-1} W_h                (n_t, H)        (h_{-1} = 0)
    2  h_t = g(a),  g = tanh, or ReLU when relu is True (the IRNN remedy;
                    the identity initialisation of W_h is the layer's business)

cache (S, N, 0): backward needs only h, since g'(a) = 1 - h^2 (tanh) or [h > 0] (ReLU).
"""
import numpy as np
from numba import njit, prange

from ._math import (
    JIT,
    add_weight_grad,
    addmm_nt,
    backward_setup,
    copy_cols,
    dtanh,
    forward_setup,
    step_rows,
    sum_chunks,
    tanh,
)


@njit(**JIT)
def rnn_forward(xp, w_h, offsets, relu):
    """xp (S, N, H), w_h (S, H, H), offsets (T+1,), relu (bool) -> h (S, N, H), cache (S, N, 0)."""
    xp, w_h = np.ascontiguousarray(xp), np.ascontiguousarray(w_h)  # no-op views for C arrays
    h, cache, wt, bounds = forward_setup(xp, w_h, offsets, 0)
    _forward_items(h, xp, wt, offsets, bounds, relu)
    return h, cache


@njit(**JIT)
def rnn_backward(dh, xp, w_h, offsets, h, cache, relu):
    """dh (S, N, H) + forward's arrays -> dxp (S, N, H) (d loss / d a, step 1), dw_h (S, H, H)."""
    w_h, h = np.ascontiguousarray(w_h), np.ascontiguousarray(h)
    dxp, dh_all, dw_parts, bounds = backward_setup(dh, xp, w_h, offsets)
    _backward_items(dxp, dw_parts, dh_all, h, w_h, offsets, bounds, relu)
    return dxp, sum_chunks(dw_parts, len(xp))


@njit(parallel=True, **JIT)
def _forward_items(h, xp, wt, offsets, bounds, relu):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of h[s]."""
    C = len(bounds) - 1
    for item in prange(xp.shape[0] * C):
        s, k = item // C, item % C
        _forward_chunk(h[s], xp[s], wt[s], offsets, bounds[k], bounds[k + 1], relu)


@njit(parallel=True, **JIT)
def _backward_items(dxp, dw_parts, dh, h, w_h, offsets, bounds, relu):
    """Parallel axis: (stream s, rank chunk k); an item writes only its ranks' rows of dxp[s], dh[s],
    and its own dw_parts[item]."""
    C = len(bounds) - 1
    for item in prange(dxp.shape[0] * C):
        s, r0, r1 = item // C, bounds[item % C], bounds[item % C + 1]
        _backward_chunk(dxp[s], dh[s], h[s], w_h[s], offsets, r0, r1, relu)
        add_weight_grad(dw_parts[item], h[s], dxp[s], offsets, r0, r1)  # 1: dW_h = sum_t h_{t-1}^T da_t


@njit(**JIT)
def _forward_chunk(h, xp, wt, offsets, r0, r1, relu):
    """Serial time loop over ranks r0:r1 of one stream. h, xp (N, H), wt (H, H)."""
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            break
        if t == 0:  # h_{-1} = 0: a = xp
            copy_cols(h[row:row + n], xp[row:row + n])
        else:  # 1, a written in h's rows
            addmm_nt(h[row:row + n], xp[row:row + n], h[prev:prev + n], 0, wt)
        _activate(h[row:row + n], relu)  # 2


@njit(**JIT)
def _backward_chunk(dxp, dh, h, w_h, offsets, r0, r1, relu):
    """Reverse time loop over ranks r0:r1. dxp (N, H); dh (N, H) gains step t's recurrent part."""
    zero = h.dtype.type(0)
    for t in range(len(offsets) - 2, -1, -1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            continue
        for r in range(row, row + n):  # 2: h = g(a)
            dar, dhr, hr = dxp[r], dh[r], h[r]
            if relu:
                for j in range(h.shape[1]):
                    dar[j] = dhr[j] if hr[j] > zero else zero
            else:
                for j in range(h.shape[1]):
                    dar[j] = dhr[j] * dtanh(hr[j])
        if t > 0:  # 1: a = ... + h_{t-1} W_h  ->  dh_{t-1} += da W_h^T
            addmm_nt(dh[prev:prev + n], dh[prev:prev + n], dxp[row:row + n], 0, w_h)


@njit(**JIT)
def _activate(h, relu):
    """2: h = g(a), in place over (n, H)."""
    zero = h.dtype.type(0)
    for r in range(h.shape[0]):
        hr = h[r]
        if relu:
            for j in range(h.shape[1]):
                hr[j] = max(hr[j], zero)
        else:
            for j in range(h.shape[1]):
                hr[j] = tanh(hr[j])
