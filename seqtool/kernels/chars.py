"""Character CNN kernels: a 1-d convolution over each word's characters, max-pooled over positions.

A word with characters c_0 .. c_{L-1} (ids into a character table E (C, dc)) is
read as ``<PAD>`` * h + c + ``<PAD>`` * h, h = k // 2, where row 0 of E (<PAD>)
is a trained word-boundary marker. With filters W (k, dc, F) and bias b (F,):

    z[p, f] = b[f] + sum_o sum_d E[c_{p+o-h}, d] W[o, d, f]        p = 0..L-1
    y[f]    = max_p z[p, f]

The embedding and the convolution are both linear, so the caller folds them
into one table per character and window offset, P = E W (C, k, F), once per
batch; the kernel then only adds k rows of P per position (k*F per
character instead of k*dc*F). backward gives dP; the caller finishes with
dE = dP W^T and dW = E^T dP.
"""
import numpy as np
from numba import njit, prange

from .parallel import worth_parallel


@njit(nogil=True, cache=True)
def _cnn_word(n, y, arg, P, b, chars):
    # word n: writes y[n] (F,) and arg[n] (F,)
    C, k, F = P.shape
    W = chars.shape[1]
    h = k // 2
    L = 0
    while L < W and chars[n, L] != 0:
        L += 1
    for f in range(F):
        y[n, f] = b[f]
        arg[n, f] = -1
    z = np.empty(F, dtype=P.dtype)
    for p in range(L):
        for f in range(F):
            z[f] = b[f]
        for o in range(k):
            q = p + o - h
            c = chars[n, q] if 0 <= q < L else 0                # outside the word: the <PAD> marker
            for f in range(F):
                z[f] += P[c, o, f]                              # 1: z[p] = b + sum_o P[c_{p+o-h}, o]
        for f in range(F):
            if p == 0 or z[f] > y[n, f]:
                y[n, f] = z[f]                                  # 2: y = max_p z[p]
                arg[n, f] = p


@njit(parallel=True, nogil=True, cache=True)
def _cnn_par(y, arg, P, b, chars):
    for n in prange(chars.shape[0]):  # parallel over words; iteration n owns y[n], arg[n]
        _cnn_word(n, y, arg, P, b, chars)


@njit(nogil=True, cache=True)
def _cnn_ser(y, arg, P, b, chars):
    for n in range(chars.shape[0]):
        _cnn_word(n, y, arg, P, b, chars)


# N*W*k*F adds; below it a thread team costs more than it saves. A training batch of 32 sentences
# (~450 words x 12 characters, 3 x 30 filters: ~0.5M) is above: 0.26 ms serial, 0.12 ms on 2 threads.
PARALLEL_WORK = 100_000


def char_cnn_forward(P, b, chars, parallel=None):
    """P (C, k, F) folded filters, b (F,), chars (N, W) int, left-aligned, 0 past the word's end
    -> y (N, F), arg (N, F) int32: the position p of the max (-1 for an empty word: y = b)"""
    C, k, F = P.shape
    N, W = chars.shape
    y = np.empty((N, F), dtype=P.dtype)
    arg = np.empty((N, F), dtype=np.int32)
    if parallel is None:
        parallel = worth_parallel(N * W * k * F, PARALLEL_WORK)
    (_cnn_par if parallel else _cnn_ser)(y, arg, P, b, chars)
    return y, arg


@njit(parallel=True, nogil=True, cache=True)
def char_cnn_backward(dP, dy, chars, arg):
    # dP (C, k, F) accumulated (+=); dy (N, F); chars, arg as char_cnn_forward -> db (F,)
    # parallel over filters: different words share characters, so a row of dP has no single owner,
    # but column f of dP and db[f] belong to filter f alone; within it the words add in input order,
    # so the sums are the same on any number of threads
    C, k, F = dP.shape
    N, W = chars.shape
    h = k // 2
    lengths = np.zeros(N, dtype=np.int64)
    for n in range(N):
        L = 0
        while L < W and chars[n, L] != 0:
            L += 1
        lengths[n] = L
    db = np.zeros(F, dtype=np.float64)
    for f in prange(F):
        for n in range(N):
            g = dy[n, f]
            db[f] += g                                          # back 1: d z / d b = 1 (y = b if empty)
            p = arg[n, f]                                       # back 2: only the max position
            if p < 0:
                continue
            for o in range(k):
                q = p + o - h
                c = chars[n, q] if 0 <= q < lengths[n] else 0
                dP[c, o, f] += g                                # back 1: d z[p] / d P[c_{p+o-h}, o]
    return db
