"""Linear-chain CRF kernels on packed rows: log-partition, its exact gradient, marginals, Viterbi.

A sequence of length L with emissions e (L, K) and tags y has the score

    s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{L-1}]

and the negative log-likelihood nll = log Z - s(y_gold), log Z = logsumexp_y s(y).
The forward algorithm (log space) gives alpha; the backward recursion gives
beta; together they give the marginals that are the gradient of log Z:

    alpha[0, j] = start[j] + e[0, j]
    alpha[t, j] = e[t, j] + LSE_i(alpha[t-1, i] + trans[i, j])          t = 1..L-1
    log Z      = LSE_j(alpha[L-1, j] + end[j])
    beta[L-1, i] = end[i]
    beta[t, i]   = LSE_j(trans[i, j] + e[t+1, j] + beta[t+1, j])        t = L-2..0
    p(y_t = i)   = exp(alpha[t, i] + beta[t, i] - log Z)
    p(y_t-1 = i, y_t = j) = exp(alpha[t-1, i] + trans[i, j] + e[t, j] + beta[t, j] - log Z)

Layout (seqtool/packing.py): the sequence of rank r has its step t in row
offsets[t] + r, and its length is lengths[r] (``lengths`` here is the sorted
``Packing.lengths[order]``). Every kernel runs ``prange`` over ranks: iteration
r owns the rows of sequence r and entry r of every per-sequence output, so no
two iterations write the same place. alpha/beta are kept in float64 whatever
the emissions' dtype (K is small; the log-sum-exps stay exact), gradients come
back in the emissions' dtype.
"""
import numpy as np
from numba import njit, prange

_PAR = dict(parallel=True, cache=True)


@njit(cache=True, inline="always")
def _lse_col(v, M, j):
    # log sum_i exp(v[i] + M[i, j]) for v (K,), M (K, K)
    K = v.shape[0]
    m = -np.inf
    for i in range(K):
        m = max(m, v[i] + M[i, j])
    if m == -np.inf:
        return m
    z = 0.0
    for i in range(K):
        z += np.exp(v[i] + M[i, j] - m)
    return m + np.log(z)


@njit(cache=True)
def _alpha(alpha, em, trans, start, offsets, r, L):
    # fills alpha rows of sequence r (rows offsets[t] + r, t < L); alpha (N, K) float64
    K = em.shape[1]
    row = offsets[0] + r
    for j in range(K):
        alpha[row, j] = start[j] + em[row, j]                       # 1: alpha[0]
    for t in range(1, L):
        prev, row = row, offsets[t] + r
        for j in range(K):
            alpha[row, j] = em[row, j] + _lse_col(alpha[prev], trans, j)   # 2: alpha[t]


@njit(cache=True)
def _beta(beta, em, trans, end, offsets, r, L):
    # fills beta rows of sequence r; beta (N, K) float64
    K = em.shape[1]
    last = offsets[L - 1] + r
    for i in range(K):
        beta[last, i] = end[i]                                      # 4: beta[L-1]
    tmp = np.empty(K, dtype=np.float64)
    for t in range(L - 2, -1, -1):
        row, nxt = offsets[t] + r, offsets[t + 1] + r
        for i in range(K):
            m = -np.inf
            for j in range(K):
                tmp[j] = trans[i, j] + em[nxt, j] + beta[nxt, j]
                m = max(m, tmp[j])
            z = 0.0
            for j in range(K):
                z += np.exp(tmp[j] - m)
            beta[row, i] = m + np.log(z)                            # 5: beta[t]


@njit(cache=True)
def _log_z(alpha, end, offsets, r, L):
    last = offsets[L - 1] + r
    K = alpha.shape[1]
    m = -np.inf
    for j in range(K):
        m = max(m, alpha[last, j] + end[j])
    z = 0.0
    for j in range(K):
        z += np.exp(alpha[last, j] + end[j] - m)
    return m + np.log(z)                                            # 3: log Z


@njit(**_PAR)
def crf_forward(em, tags, trans, start, end, offsets, lengths):
    # em (N, K) emissions, tags (N,) gold tag per row, trans (K, K), start (K,), end (K,),
    # offsets (T+1,), lengths (B,) sorted (rank order)
    # -> nll (B,) float64 per rank, log_z (B,) float64, alpha (N, K) float64 (the cache)
    N, K = em.shape
    B = lengths.shape[0]
    alpha = np.empty((N, K), dtype=np.float64)
    nll = np.empty(B, dtype=np.float64)
    log_z = np.empty(B, dtype=np.float64)
    for r in prange(B):  # parallel over sequences; iteration r owns rows offsets[t] + r, nll[r], log_z[r]
        L = lengths[r]
        _alpha(alpha, em, trans, start, offsets, r, L)
        log_z[r] = _log_z(alpha, end, offsets, r, L)
        row = offsets[0] + r
        gold = start[tags[row]] + em[row, tags[row]]                # 6: s(y_gold)
        for t in range(1, L):
            prev, row = row, offsets[t] + r
            gold += trans[tags[prev], tags[row]] + em[row, tags[row]]
        gold += end[tags[row]]
        nll[r] = log_z[r] - gold                                    # 7: nll = log Z - s(y_gold)
    return nll, log_z, alpha


@njit(**_PAR)
def crf_backward(dnll, em, tags, trans, start, end, offsets, lengths, alpha, log_z):
    # dnll (B,) gradient of the loss w.r.t. each rank's nll; the rest as crf_forward (alpha, log_z its cache)
    # -> dem (N, K) in em's dtype, dtrans (B, K, K), dstart (B, K), dend (B, K) float64 per rank
    #    (the caller sums the per-rank weight gradients: each iteration owns its own slice)
    N, K = em.shape
    B = lengths.shape[0]
    beta = np.empty((N, K), dtype=np.float64)
    dem = np.zeros((N, K), dtype=em.dtype)
    dtrans = np.zeros((B, K, K), dtype=np.float64)
    dstart = np.zeros((B, K), dtype=np.float64)
    dend = np.zeros((B, K), dtype=np.float64)
    for r in prange(B):  # iteration r owns rows offsets[t] + r of beta and dem, and dtrans[r], dstart[r], dend[r]
        L = lengths[r]
        g = dnll[r]
        lz = log_z[r]
        _beta(beta, em, trans, end, offsets, r, L)
        row = offsets[0] + r
        for t in range(L):
            row = offsets[t] + r
            for j in range(K):
                p = np.exp(alpha[row, j] + beta[row, j] - lz)       # back 3: d log Z / d e[t, j] = p(y_t = j)
                dem[row, j] = g * p
                if t == 0:
                    dstart[r, j] += g * p                           # back 1: d alpha[0] / d start
                if t == L - 1:
                    dend[r, j] += g * p                             # back 3: d log Z / d end
            dem[row, tags[row]] -= g                                # back 6: d(-s) / d e[t, y_t] = -1
            if t > 0:
                prev = offsets[t - 1] + r
                for i in range(K):
                    for j in range(K):                              # back 2: pairwise marginal
                        dtrans[r, i, j] += g * np.exp(alpha[prev, i] + trans[i, j] + em[row, j]
                                                      + beta[row, j] - lz)
                dtrans[r, tags[prev], tags[row]] -= g               # back 6: gold transition
        dstart[r, tags[offsets[0] + r]] -= g                        # back 6: gold start
        dend[r, tags[row]] -= g                                     # back 6: gold end
    return dem, dtrans, dstart, dend


@njit(**_PAR)
def crf_marginals(em, trans, start, end, offsets, lengths):
    # -> p (N, K) float64: p[row, j] = p(y_t = j | x) for the row's sequence and step; log_z (B,)
    N, K = em.shape
    B = lengths.shape[0]
    alpha = np.empty((N, K), dtype=np.float64)
    beta = np.empty((N, K), dtype=np.float64)
    p = np.empty((N, K), dtype=np.float64)
    log_z = np.empty(B, dtype=np.float64)
    for r in prange(B):  # iteration r owns the rows of sequence r and log_z[r]
        L = lengths[r]
        _alpha(alpha, em, trans, start, offsets, r, L)
        _beta(beta, em, trans, end, offsets, r, L)
        log_z[r] = _log_z(alpha, end, offsets, r, L)
        for t in range(L):
            row = offsets[t] + r
            for j in range(K):
                p[row, j] = np.exp(alpha[row, j] + beta[row, j] - log_z[r])
    return p, log_z


@njit(**_PAR)
def crf_viterbi(em, trans, start, end, offsets, lengths):
    # -> best (N,) int64 tag per row of the highest-scoring path of each sequence, score (B,) float64
    N, K = em.shape
    B = lengths.shape[0]
    delta = np.empty((N, K), dtype=np.float64)   # best score of a path ending in j at the row
    back = np.empty((N, K), dtype=np.int64)      # its previous tag
    best = np.empty(N, dtype=np.int64)
    score = np.empty(B, dtype=np.float64)
    for r in prange(B):  # iteration r owns the rows of sequence r and score[r]
        L = lengths[r]
        row = offsets[0] + r
        for j in range(K):
            delta[row, j] = start[j] + em[row, j]
        for t in range(1, L):
            prev, row = row, offsets[t] + r
            for j in range(K):
                bi, bv = 0, -np.inf
                for i in range(K):
                    v = delta[prev, i] + trans[i, j]
                    if v > bv:
                        bi, bv = i, v
                delta[row, j] = bv + em[row, j]
                back[row, j] = bi
        bj, bv = 0, -np.inf
        for j in range(K):
            v = delta[row, j] + end[j]
            if v > bv:
                bj, bv = j, v
        score[r] = bv
        for t in range(L - 1, -1, -1):
            row = offsets[t] + r
            best[row] = bj
            if t > 0:
                bj = back[row, bj]
    return best, score
