"""Elementwise and row-moving kernels of a training step: dropout masks, and moving rows between a
bidirectional layer's (N, d) layout and its two streams (S, N, d) (contract: kernels/__init__.py).

Each is a memory pass of a few hundred thousand floats per batch, which numpy runs on one
thread; here every loop is a ``prange`` over rows (or column blocks) whose iterations own
their writes, and every sum runs in a fixed order, so results are the same on any number of
threads (benchmarks/profile_step.py measures what they take). The kernels that do not sum are
built parallel and serial, the serial build taken for small arrays (kernels/parallel.py).

Dropout draws its mask from a counter-based generator: entry k of a call with key ``key`` is
kept when the top 32 bits of splitmix64(key + (k + 1) * gamma) reach p * 2^32. An entry's draw
depends on (key, k) alone, so rows can be split among threads in any way, and the caller
draws one key per call from the run's seeded generator (same seed, same masks).
"""
import numpy as np
from numba import njit, prange

from ._math import JIT
from .parallel import elementwise

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)


@njit(nogil=True, cache=True, inline="always")
def _draw32(key, k):
    """32 random bits for entry k under key: splitmix64's output for state key + (k + 1) * gamma."""
    z = key + (np.uint64(k) + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return (z ^ (z >> _S31)) >> _S32


@elementwise(**JIT)
def dropout_forward(x, key, cut, scale):
    """x (n, d) C-contiguous; key uint64; cut uint64 = p * 2^32; scale = 1 / (1 - p) in x's dtype
    -> y = x * mask, mask (n, d): scale where the entry's draw >= cut, else 0."""
    n, d = x.shape
    y = np.empty_like(x)
    mask = np.empty_like(x)
    zero = x.dtype.type(0)
    for i in prange(n):  # iteration i owns row i
        for j in range(d):
            m = scale if _draw32(key, i * d + j) >= cut else zero
            mask[i, j] = m
            y[i, j] = x[i, j] * m
    return y, mask


# ---------------------------------------------------------------- a bidirectional layer's streams

@elementwise(**JIT)
def split_input(x, rev):
    """x (N, d) -> xs (2, N, d): stream 0 reads x, stream 1 the reversed rows x[rev]."""
    N, d = x.shape
    xs = np.empty((2, N, d), x.dtype)
    for i in prange(N):
        r = rev[i]
        for j in range(d):
            xs[0, i, j] = x[i, j]
            xs[1, i, j] = x[r, j]
    return xs


@elementwise(**JIT)
def join_output(h, rev):
    """h (2, N, H) -> y (N, 2H) = [h[0], h[1][rev]] (the layer's output in input time order)."""
    _, N, H = h.shape
    y = np.empty((N, 2 * H), h.dtype)
    for i in prange(N):
        r = rev[i]
        for j in range(H):
            y[i, j] = h[0, i, j]
            y[i, H + j] = h[1, r, j]
    return y


@elementwise(**JIT)
def split_output_grad(dy, rev):
    """dy (N, 2H) -> dh (2, N, H): join_output's backward (rev is an involution)."""
    N, H2 = dy.shape
    H = H2 // 2
    dh = np.empty((2, N, H), dy.dtype)
    for i in prange(N):
        r = rev[i]
        for j in range(H):
            dh[0, i, j] = dy[i, j]
            dh[1, i, j] = dy[r, H + j]
    return dh


@elementwise(**JIT)
def join_input_grad(dxs, rev):
    """dxs (2, N, d) -> dx (N, d) = dxs[0] + dxs[1][rev]: split_input's backward."""
    _, N, d = dxs.shape
    dx = np.empty((N, d), dxs.dtype)
    for i in prange(N):
        r = rev[i]
        for j in range(d):
            dx[i, j] = dxs[0, i, j] + dxs[1, r, j]
    return dx


@elementwise(**JIT)
def add_bias(xp, b):
    """xp (S, N, M) += b (S, M) on every row, in place."""
    S, N, M = xp.shape
    for i in prange(N):
        for s in range(S):
            for j in range(M):
                xp[s, i, j] += b[s, j]


COLUMN_BLOCK = 32


@njit(parallel=True, **JIT)
def column_sums(a):
    """a (S, N, M) -> (S, M) sums over the rows (the bias gradient), each column summed in row order.

    Parallel over blocks of COLUMN_BLOCK columns: a block reads its stretch of every row (contiguous,
    so the adds vectorise) and owns its outputs.
    """
    S, N, M = a.shape
    out = np.zeros((S, M), a.dtype)
    blocks = -(-M // COLUMN_BLOCK)
    for item in prange(S * blocks):
        s, j0 = item // blocks, (item % blocks) * COLUMN_BLOCK
        j1 = min(j0 + COLUMN_BLOCK, M)
        acc = out[s, j0:j1]
        for i in range(N):
            row = a[s, i, j0:j1]
            for j in range(j1 - j0):
                acc[j] += row[j]
    return out
