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


@njit(parallel=True, cache=True)
def char_cnn_forward(P, b, chars):
    # P (C, k, F) folded filters, b (F,), chars (N, W) int, left-aligned, 0 past the word's end
    # -> y (N, F), arg (N, F) int32: the position p of the max (-1 for an empty word: y = b)
    C, k, F = P.shape
    N, W = chars.shape
    h = k // 2
    y = np.empty((N, F), dtype=P.dtype)
    arg = np.full((N, F), -1, dtype=np.int32)
    z = np.empty((N, F), dtype=P.dtype)   # z[n] is iteration n's scratch row
    for n in prange(N):  # parallel over words; iteration n owns y[n], arg[n], z[n]
        L = 0
        while L < W and chars[n, L] != 0:
            L += 1
        for f in range(F):
            y[n, f] = b[f]
        for p in range(L):
            for f in range(F):
                z[n, f] = b[f]
            for o in range(k):
                q = p + o - h
                c = chars[n, q] if 0 <= q < L else 0            # outside the word: the <PAD> marker
                for f in range(F):
                    z[n, f] += P[c, o, f]                       # 1: z[p] = b + sum_o P[c_{p+o-h}, o]
            for f in range(F):
                if p == 0 or z[n, f] > y[n, f]:
                    y[n, f] = z[n, f]                           # 2: y = max_p z[p]
                    arg[n, f] = p
    return y, arg


@njit(cache=True)
def char_cnn_backward(dP, dy, chars, arg):
    # dP (C, k, F) accumulated (+=); dy (N, F); chars, arg as char_cnn_forward -> db (F,)
    # serial: different words share characters, so rows of dP have no single owner (N*k*F adds)
    C, k, F = dP.shape
    N, W = chars.shape
    h = k // 2
    db = np.zeros(F, dtype=np.float64)
    for n in range(N):
        L = 0
        while L < W and chars[n, L] != 0:
            L += 1
        for f in range(F):
            g = dy[n, f]
            db[f] += g                                          # back 1: d z / d b = 1 (y = b if empty)
            p = arg[n, f]                                       # back 2: only the max position
            if p < 0:
                continue
            for o in range(k):
                q = p + o - h
                c = chars[n, q] if 0 <= q < L else 0
                dP[c, o, f] += g                                # back 1: d z[p] / d P[c_{p+o-h}, o]
    return db
