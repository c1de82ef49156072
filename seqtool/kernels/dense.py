"""Row kernels around the recurrent core: embedding gather/scatter, pooling, the token cache's rows.

All inputs are *packed* rows (see seqtool/data/packing.py): N real tokens, no
padding. Sequence-level kernels take ``rows`` (B, T) from the Packing,
rows[b, t] = packed row of (input sequence b, step t), -1 past its length, and
``lengths`` (B,). Outputs of pooling are in input order (B, d).

Dense layers use numpy's matmul (BLAS beats a hand-written kernel at every
size we train at), so there is no dense kernel here; ``project_rows`` is the
exception, for its rounding (one value per row, whatever rows come with it).

These kernels are serial: a batch has a few hundred rows of a few hundred
features, microseconds of work, less than waking a thread pool costs (and far
less when the cores are shared). Each loop still names the owner of its
writes, so a loop can become a ``prange`` where bigger batches make it pay.
dtypes follow the arrays (float32 training, float64 gradient checks).
"""
import numpy as np
from numba import njit

from ._math import JIT, addmm_nt

# ---------------------------------------------------------------- embedding

@njit(nogil=True, cache=True)
def embedding_forward(table, ids):
    # table (V, d), ids (N,) int -> out (N, d)
    N, d = ids.shape[0], table.shape[1]
    out = np.empty((N, d), dtype=table.dtype)
    for n in range(N):  # iteration n owns out[n]
        out[n, :] = table[ids[n], :]
    return out


@njit(nogil=True, cache=True)
def embedding_backward(dtable, ids, dout, skip_id):
    # dtable (V, d) accumulated in place, ids (N,), dout (N, d); rows with
    # ids == skip_id (the <PAD> row, or -1 for none) get nothing.
    # Serial: ids repeat, so rows of dtable have no single owner; N*d is small.
    for n in range(ids.shape[0]):
        i = ids[n]
        if i == skip_id:
            continue
        for j in range(dout.shape[1]):
            dtable[i, j] += dout[n, j]  # forward: out[n] = table[ids[n]]


# ---------------------------------------------------------------- pooling

@njit(nogil=True, cache=True)
def mean_pool_forward(x, rows, lengths):
    # x (N, d) packed, rows (B, T), lengths (B,) -> y (B, d) mean over real steps
    B, d = lengths.shape[0], x.shape[1]
    y = np.zeros((B, d), dtype=x.dtype)
    for b in range(B):  # iteration b owns y[b]
        for t in range(lengths[b]):
            y[b, :] += x[rows[b, t], :]
        y[b, :] /= lengths[b]
    return y


@njit(nogil=True, cache=True)
def mean_pool_backward(dy, rows, lengths, n_rows):
    # dy (B, d) -> dx (N, d); every packed row belongs to exactly one (b, t)
    B, d = dy.shape
    dx = np.empty((n_rows, d), dtype=dy.dtype)
    for b in range(B):  # iteration b owns dx[rows[b, :L_b]]
        scale = 1.0 / lengths[b]
        for t in range(lengths[b]):
            dx[rows[b, t], :] = dy[b, :] * scale  # forward: y[b] = sum_t x[rows[b, t]] / L_b
    return dx


@njit(nogil=True, cache=True)
def max_pool_forward(x, rows, lengths):
    # x (N, d) -> y (B, d) max over real steps, argmax (B, d) packed row of the max
    B, d = lengths.shape[0], x.shape[1]
    y = np.empty((B, d), dtype=x.dtype)
    arg = np.empty((B, d), dtype=np.int64)
    for b in range(B):  # iteration b owns y[b], arg[b]
        r0 = rows[b, 0]
        for j in range(d):
            y[b, j] = x[r0, j]
            arg[b, j] = r0
        for t in range(1, lengths[b]):
            r = rows[b, t]
            for j in range(d):
                if x[r, j] > y[b, j]:  # first maximum wins on ties
                    y[b, j] = x[r, j]
                    arg[b, j] = r
    return y, arg


@njit(nogil=True, cache=True)
def max_pool_backward(dy, arg, n_rows):
    # dy (B, d), arg (B, d) -> dx (N, d), zero except at each argmax
    B, d = dy.shape
    dx = np.zeros((n_rows, d), dtype=dy.dtype)
    for b in range(B):  # iteration b owns the rows of sequence b (arg[b] is among them)
        for j in range(d):
            dx[arg[b, j], j] += dy[b, j]  # forward: y[b, j] = x[arg[b, j], j]
    return dx


@njit(nogil=True, cache=True)
def last_pool_forward(x, last, first, split):
    # x (N, d), last (B,) / first (B,) packed rows -> y (B, d):
    # columns [:split] from the last real token, [split:] from the first
    # (a bidirectional layer's backward stream ends at the first token).
    B, d = last.shape[0], x.shape[1]
    y = np.empty((B, d), dtype=x.dtype)
    for b in range(B):  # iteration b owns y[b]
        y[b, :split] = x[last[b], :split]
        y[b, split:] = x[first[b], split:]
    return y


@njit(nogil=True, cache=True)
def last_pool_backward(dy, last, first, split, n_rows):
    # dy (B, d) -> dx (N, d); sequence b owns its rows, and when L_b = 1
    # (last == first) the two writes touch disjoint column ranges.
    B, d = dy.shape
    dx = np.zeros((n_rows, d), dtype=dy.dtype)
    for b in range(B):
        dx[last[b], :split] = dy[b, :split]   # forward: y[b, :split] = x[last[b], :split]
        dx[first[b], split:] = dy[b, split:]  # forward: y[b, split:] = x[first[b], split:]
    return dx


# ---------------------------------------------------------------- token cache (inference)

@njit(nogil=True, cache=True)
def gather_rows(out, table, extra, slots):
    # out (N, d): row n = table[slots[n]], or extra[slots[n] - len(table)] for slots past the table
    # (seqtool/model/token_cache.py: rows of tokens that did not fit). Iteration n owns out[n].
    V = table.shape[0]
    for n in range(slots.shape[0]):
        k = slots[n]
        src = table[k] if k < V else extra[k - V]
        dst = out[n]
        for j in range(dst.shape[0]):
            dst[j] = src[j]


@njit(**JIT)
def project_rows(x, wt, b):
    # x (m, d), wt (S, G, >= d) = W^T per stream, b (S, G) -> out (S, m, G): out[s, i] = x[i] W[s] + b[s].
    # A row's value must not depend on which rows are computed with it (a BLAS product's rounding
    # can: seqtool/model/token_cache.py needs one value per token). addmm_nt takes rows in pairs and an odd
    # last row by another loop, so the rows go in as an even count (the last one twice if need be):
    # every row then runs the same pair loop, whose sums for one row never involve the other.
    # wt may have more columns than x (zeros): a multiple of 8 keeps the pair loop free of its scalar tail.
    S, G, dp = wt.shape
    m, d = x.shape
    even = np.zeros((m + m % 2, dp), dtype=x.dtype)
    even[:m, :d] = x
    if m % 2:
        even[m, :d] = x[m - 1]
    out = np.empty((S, even.shape[0], G), dtype=x.dtype)
    for s in range(S):
        for i in range(even.shape[0]):
            out[s, i] = b[s]
        for r in range(0, even.shape[0], 64):  # blocks of rows that stay in cache while W streams past
            addmm_nt(out[s, r:r + 64], out[s, r:r + 64], even[r:r + 64], 0, wt[s])
    return out[:, :m]
