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

Layout (seqtool/data/packing.py): the sequence of rank r has its step t in row
offsets[t] + r, and its length is lengths[r] (``lengths`` here is the sorted
``Packing.lengths[order]``). Every kernel runs ``prange`` over ranks: iteration
r owns the rows of sequence r and entry r of every per-sequence output, so no
two iterations write the same place. alpha/beta are kept in float64 whatever
the emissions' dtype (K is small; the log-sum-exps stay exact), gradients come
back in the emissions' dtype.
"""
import numpy as np
from numba import njit, prange

from .parallel import worth_parallel


# The log-sum-exps below are factored so that a step costs K exps instead of K*K:
#     LSE_i(v[i] + M[i, j]) = mv + c[j] + log(sum_i exp(v[i] - mv) * exp(M[i, j] - c[j]))
# with mv = max_i v[i] and c[j] = max_i M[i, j]: every factor is at most 1 and exp(M - c) is
# computed once per call (the wrappers pass it down as ``factors``). Each sum has a term of at
# least exp(v[i*] - mv) for the i* that maximises M[:, j]; only when that underflows (scores 700
# apart) is the column summed the exact way, term by term.
TINY = 1e-280


@njit(nogil=True, cache=True)
def _lse_col(v, M, j):
    # log sum_i exp(v[i] + M[i, j]) for v (K,), M (K, K), term by term
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


@njit(nogil=True, cache=True)
def _column_factors(M):
    """(exp(M - c), c) with c[j] = max_i M[i, j] (K, K), (K,)."""
    K = M.shape[0]
    c = np.empty(K, dtype=np.float64)
    for j in range(K):
        c[j] = M[0, j]
        for i in range(1, K):
            c[j] = max(c[j], M[i, j])
    E = np.empty((K, K), dtype=np.float64)
    for i in range(K):
        for j in range(K):
            E[i, j] = np.exp(M[i, j] - c[j]) if c[j] > -np.inf else 0.0
    return E, c


@njit(nogil=True, cache=True)
def _alpha(alpha, em, trans, start, offsets, r, L, E, c):
    # fills alpha rows of sequence r (rows offsets[t] + r, t < L); alpha (N, K) float64; E, c = _column_factors(trans)
    K = em.shape[1]
    row = offsets[0] + r
    for j in range(K):
        alpha[row, j] = start[j] + em[row, j]                       # 1: alpha[0]
    a = np.empty(K, dtype=np.float64)
    for t in range(1, L):
        prev, row = row, offsets[t] + r
        m = alpha[prev, 0]
        for i in range(1, K):
            m = max(m, alpha[prev, i])
        for i in range(K):
            a[i] = np.exp(alpha[prev, i] - m)
        for j in range(K):                                          # 2: alpha[t]
            z = 0.0
            for i in range(K):
                z += a[i] * E[i, j]
            if z > TINY:
                alpha[row, j] = em[row, j] + m + c[j] + np.log(z)
            else:
                alpha[row, j] = em[row, j] + _lse_col(alpha[prev], trans, j)


@njit(nogil=True, cache=True)
def _beta(beta, em, trans, end, offsets, r, L, Et, c):
    # fills beta rows of sequence r; beta (N, K) float64; Et, c = _column_factors(trans.T): the rows of trans,
    # Et[j, i] = exp(trans[i, j] - c[i])
    K = em.shape[1]
    last = offsets[L - 1] + r
    for i in range(K):
        beta[last, i] = end[i]                                      # 4: beta[L-1]
    b = np.empty(K, dtype=np.float64)
    w = np.empty(K, dtype=np.float64)
    for t in range(L - 2, -1, -1):
        row, nxt = offsets[t] + r, offsets[t + 1] + r
        for j in range(K):
            w[j] = em[nxt, j] + beta[nxt, j]
        m = w[0]
        for j in range(1, K):
            m = max(m, w[j])
        for j in range(K):
            b[j] = np.exp(w[j] - m)
        for i in range(K):                                          # 5: beta[t]
            z = 0.0
            for j in range(K):
                z += Et[j, i] * b[j]
            if z > TINY:
                beta[row, i] = m + c[i] + np.log(z)
            else:
                beta[row, i] = _lse_col(w, trans.T, i)


@njit(nogil=True, cache=True)
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


# ---------------------------------------------------------------- per sequence (rank r): the math

@njit(nogil=True, cache=True)
def _nll_seq(r, nll, log_z, alpha, em, tags, trans, start, end, offsets, lengths, factors):
    # writes alpha rows of sequence r, log_z[r], nll[r]
    L = lengths[r]
    _alpha(alpha, em, trans, start, offsets, r, L, *factors)
    log_z[r] = _log_z(alpha, end, offsets, r, L)
    row = offsets[0] + r
    gold = start[tags[row]] + em[row, tags[row]]                    # 6: s(y_gold)
    for t in range(1, L):
        prev, row = row, offsets[t] + r
        gold += trans[tags[prev], tags[row]] + em[row, tags[row]]
    gold += end[tags[row]]
    nll[r] = log_z[r] - gold                                        # 7: nll = log Z - s(y_gold)


@njit(nogil=True, cache=True)
def _grad_seq(r, dem, dtrans, dstart, dend, beta, dnll, em, tags, trans, end, offsets, lengths, alpha, log_z,
              factors):
    # writes beta and dem rows of sequence r, dtrans[r], dstart[r], dend[r] (zeroed by the caller)
    K = em.shape[1]
    L = lengths[r]
    g = dnll[r]
    lz = log_z[r]
    Er, cr, Et, ct = factors
    _beta(beta, em, trans, end, offsets, r, L, Er, cr)
    u = np.empty(K, dtype=np.float64)
    w = np.empty(K, dtype=np.float64)
    row = offsets[0] + r
    for t in range(L):
        row = offsets[t] + r
        for j in range(K):
            p = np.exp(alpha[row, j] + beta[row, j] - lz)           # back 3: d log Z / d e[t, j] = p(y_t = j)
            dem[row, j] = g * p
            if t == 0:
                dstart[r, j] += g * p                               # back 1: d alpha[0] / d start
            if t == L - 1:
                dend[r, j] += g * p                                 # back 3: d log Z / d end
        dem[row, tags[row]] -= g                                    # back 6: d(-s) / d e[t, y_t] = -1
        if t > 0:                                                   # back 2: pairwise marginal
            prev = offsets[t - 1] + r
            _add_pair_marginals(dtrans[r], g, alpha[prev], em[row], beta[row], trans, Et, ct, lz, u, w)
            dtrans[r, tags[prev], tags[row]] -= g                   # back 6: gold transition
    dstart[r, tags[offsets[0] + r]] -= g                            # back 6: gold start
    dend[r, tags[row]] -= g                                         # back 6: gold end


@njit(nogil=True, cache=True)
def _add_pair_marginals(dtrans, g, alpha_prev, em_row, beta_row, trans, Et, ct, lz, u, w):
    """dtrans[i, j] += g p(y_{t-1} = i, y_t = j) = g exp(alpha_prev[i] + trans[i, j] + em_row[j] + beta_row[j] - lz),
    factored as g exp(mu + mw + ct - lz) * exp(alpha_prev[i] - mu) * exp(trans[i, j] - ct) * exp(... - mw):
    2K exps instead of K*K. The first factor is at most exp(ct - min trans) (a probability is at most 1); when
    that could overflow (transition scores 700 apart) the terms are summed one by one."""
    K = u.shape[0]
    mu, mw = alpha_prev[0], em_row[0] + beta_row[0]
    for i in range(1, K):
        mu = max(mu, alpha_prev[i])
        mw = max(mw, em_row[i] + beta_row[i])
    lead = mu + mw + ct - lz
    if lead > 600.0:
        for i in range(K):
            for j in range(K):
                dtrans[i, j] += g * np.exp(alpha_prev[i] + trans[i, j] + em_row[j] + beta_row[j] - lz)
        return
    scale = g * np.exp(lead)
    for i in range(K):
        u[i] = np.exp(alpha_prev[i] - mu)
        w[i] = np.exp(em_row[i] + beta_row[i] - mw)
    for i in range(K):
        for j in range(K):
            dtrans[i, j] += scale * u[i] * Et[i, j] * w[j]


@njit(nogil=True, cache=True)
def _marginals_seq(r, p, log_z, alpha, beta, em, et, es, ee, offsets, lengths):
    # writes alpha, beta and p rows of sequence r, log_z[r]. Probability space with per-row
    # scaling (no exp or log per transition term, ~20x cheaper than log space): et = exp(trans),
    # es = exp(start), ee = exp(end); each row's alpha and beta are known up to a positive factor
    # (the row's emission maximum is taken out before exp, then the row is normalised), which
    # cancels in p = alpha * beta / sum(alpha * beta).
    K = em.shape[1]
    L = lengths[r]
    row = offsets[0] + r
    m = _row_max(em, row)
    z = 0.0
    for j in range(K):
        v = es[j] * np.exp(em[row, j] - m)                            # 1: alpha[0] / e^m
        alpha[row, j] = v
        z += v
    lz = _normalise(alpha, row, z) + m
    for t in range(1, L):
        prev, row = row, offsets[t] + r
        m = _row_max(em, row)
        z = 0.0
        for j in range(K):
            acc = 0.0
            for i in range(K):
                acc += alpha[prev, i] * et[i, j]
            v = acc * np.exp(em[row, j] - m)                          # 2: alpha[t], scaled
            alpha[row, j] = v
            z += v
        lz += _normalise(alpha, row, z) + m
    z = 0.0
    for j in range(K):
        z += alpha[row, j] * ee[j]
    log_z[r] = lz + np.log(max(z, 1e-300))                            # log Z
    for i in range(K):
        beta[row, i] = ee[i]                                          # beta[L-1]
    for t in range(L - 2, -1, -1):
        nxt, row = row, offsets[t] + r
        m = _row_max(em, nxt)
        for j in range(K):
            p[nxt, j] = np.exp(em[nxt, j] - m) * beta[nxt, j]         # p[nxt] as scratch: e^(em - m) beta
        for i in range(K):
            acc = 0.0
            for j in range(K):
                acc += et[i, j] * p[nxt, j]
            beta[row, i] = acc                                        # beta[t], scaled
        z = 0.0
        for i in range(K):
            z += beta[row, i]
        _normalise(beta, row, z)
    for t in range(L):
        row = offsets[t] + r
        z = 0.0
        for j in range(K):
            z += alpha[row, j] * beta[row, j]
        z = max(z, 1e-300)
        for j in range(K):
            p[row, j] = alpha[row, j] * beta[row, j] / z              # p(y_t = j)


@njit(nogil=True, cache=True, inline="always")
def _row_max(em, row):
    m = -np.inf
    for j in range(em.shape[1]):
        m = max(m, em[row, j])
    return m


@njit(nogil=True, cache=True, inline="always")
def _normalise(a, row, z):
    # a[row] /= z; returns log z (the factor taken out)
    z = max(z, 1e-300)
    for j in range(a.shape[1]):
        a[row, j] /= z
    return np.log(z)


@njit(nogil=True, cache=True)
def _viterbi_seq(r, best, score, delta, back, em, trans, start, end, offsets, lengths):
    # writes delta, back and best rows of sequence r, score[r]
    K = em.shape[1]
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
            delta[row, j] = bv + em[row, j]                         # best path ending in j at t
            back[row, j] = bi
    bj, bv = 0, -np.inf
    for j in range(K):
        v = delta[row, j] + end[j]
        if v > bv:
            bj, bv = j, v
    score[r] = bv
    for t in range(L - 1, -1, -1):                                  # follow the back pointers
        row = offsets[t] + r
        best[row] = bj
        if t > 0:
            bj = back[row, bj]


# ---------------------------------------------------------------- drivers: over the sequences
# Each kernel has a parallel driver (prange over ranks: iteration r owns the rows offsets[t] + r
# of every (N, .) array and entry r of every (B, ...) array, so no two iterations write one
# place) and a serial twin. The outputs are allocated by the Python wrappers below, so a
# parallel driver is exactly one parallel region. The ranks are sorted by length and prange
# hands each thread a contiguous block of iterations, so the drivers visit them zigzag
# (longest, shortest, second longest, ...): every block then holds long and short sequences
# alike (a training batch of 32 on 2 threads: 1.2x in rank order). Under PARALLEL_WORK
# transition terms (N*K*K, ~2 ns each in the loss) a thread team costs more than it
# saves; a training batch of 32 sentences (~36k terms at K=9, ~0.4 ms forward and backward)
# is above it. A caller with one kernel thread (tag's workers, one chunk per core) runs serially.
PARALLEL_WORK = 20_000


@njit(nogil=True, cache=True, inline="always")
def _zigzag(i, B):
    """The rank of iteration i of B: 0, B-1, 1, B-2, ... (a permutation of 0..B-1)."""
    return i // 2 if i % 2 == 0 else B - 1 - i // 2


@njit(parallel=True, nogil=True, cache=True)
def _nll_par(nll, log_z, alpha, em, tags, trans, start, end, offsets, lengths, factors):
    for i in prange(lengths.shape[0]):
        _nll_seq(_zigzag(i, lengths.shape[0]), nll, log_z, alpha, em, tags, trans, start, end, offsets, lengths,
                 factors)


@njit(nogil=True, cache=True)
def _nll_ser(nll, log_z, alpha, em, tags, trans, start, end, offsets, lengths, factors):
    for r in range(lengths.shape[0]):
        _nll_seq(r, nll, log_z, alpha, em, tags, trans, start, end, offsets, lengths, factors)


@njit(parallel=True, nogil=True, cache=True)
def _grad_par(dem, dtrans, dstart, dend, beta, dnll, em, tags, trans, end, offsets, lengths, alpha, log_z, factors):
    for i in prange(lengths.shape[0]):
        _grad_seq(_zigzag(i, lengths.shape[0]), dem, dtrans, dstart, dend, beta, dnll, em, tags, trans, end,
                  offsets, lengths, alpha, log_z, factors)


@njit(nogil=True, cache=True)
def _grad_ser(dem, dtrans, dstart, dend, beta, dnll, em, tags, trans, end, offsets, lengths, alpha, log_z, factors):
    for r in range(lengths.shape[0]):
        _grad_seq(r, dem, dtrans, dstart, dend, beta, dnll, em, tags, trans, end, offsets, lengths, alpha, log_z,
                  factors)


@njit(parallel=True, nogil=True, cache=True)
def _marginals_par(p, log_z, alpha, beta, em, et, es, ee, offsets, lengths):
    for i in prange(lengths.shape[0]):
        _marginals_seq(_zigzag(i, lengths.shape[0]), p, log_z, alpha, beta, em, et, es, ee, offsets, lengths)


@njit(nogil=True, cache=True)
def _marginals_ser(p, log_z, alpha, beta, em, et, es, ee, offsets, lengths):
    for r in range(lengths.shape[0]):
        _marginals_seq(r, p, log_z, alpha, beta, em, et, es, ee, offsets, lengths)


@njit(parallel=True, nogil=True, cache=True)
def _viterbi_par(best, score, delta, back, em, trans, start, end, offsets, lengths):
    for i in prange(lengths.shape[0]):
        _viterbi_seq(_zigzag(i, lengths.shape[0]), best, score, delta, back, em, trans, start, end, offsets,
                     lengths)


@njit(nogil=True, cache=True)
def _viterbi_ser(best, score, delta, back, em, trans, start, end, offsets, lengths):
    for r in range(lengths.shape[0]):
        _viterbi_seq(r, best, score, delta, back, em, trans, start, end, offsets, lengths)


# ---------------------------------------------------------------- the kernels

def crf_forward(em, tags, trans, start, end, offsets, lengths, parallel=None):
    """em (N, K) emissions, tags (N,) gold tag per row, trans (K, K), start (K,), end (K,),
    offsets (T+1,), lengths (B,) sorted (rank order); parallel None: by the amount of work
    -> nll (B,) float64 per rank, log_z (B,) float64, alpha (N, K) float64 (the cache)"""
    N, K = em.shape
    B = lengths.shape[0]
    alpha = np.empty((N, K), dtype=np.float64)
    nll = np.empty(B, dtype=np.float64)
    log_z = np.empty(B, dtype=np.float64)
    run = _nll_par if _parallel(parallel, N * K * K) else _nll_ser
    run(nll, log_z, alpha, em, tags, trans, start, end, offsets, lengths, _column_factors(_as64(trans)))
    return nll, log_z, alpha


def crf_backward(dnll, em, tags, trans, start, end, offsets, lengths, alpha, log_z, parallel=None):
    """dnll (B,) gradient of the loss w.r.t. each rank's nll; the rest as crf_forward (alpha, log_z its cache)
    -> dem (N, K) in em's dtype, dtrans (B, K, K), dstart (B, K), dend (B, K) float64 per rank
       (the caller sums the per-rank weight gradients: each iteration owns its own slice)"""
    N, K = em.shape
    B = lengths.shape[0]
    beta = np.empty((N, K), dtype=np.float64)
    dem = np.empty((N, K), dtype=em.dtype)
    dtrans = np.zeros((B, K, K), dtype=np.float64)
    dstart = np.zeros((B, K), dtype=np.float64)
    dend = np.zeros((B, K), dtype=np.float64)
    run = _grad_par if _parallel(parallel, N * K * K) else _grad_ser
    trans64 = _as64(trans)
    top = trans64.max()
    factors = (*_column_factors(np.ascontiguousarray(trans64.T)), np.exp(trans64 - top), top)
    run(dem, dtrans, dstart, dend, beta, np.asarray(dnll, dtype=np.float64), em, tags, trans, end, offsets,
        lengths, alpha, log_z, factors)
    return dem, dtrans, dstart, dend


def crf_marginals(em, trans, start, end, offsets, lengths, parallel=None):
    """-> p (N, K) float64: p[row, j] = p(y_t = j | x) for the row's sequence and step; log_z (B,)
    (alpha/beta here are scaled probabilities, not the log-space arrays of crf_forward/backward)"""
    N, K = em.shape
    alpha = np.empty((N, K), dtype=np.float64)
    beta = np.empty((N, K), dtype=np.float64)
    p = np.empty((N, K), dtype=np.float64)
    log_z = np.empty(lengths.shape[0], dtype=np.float64)
    run = _marginals_par if _parallel(parallel, N * K * K) else _marginals_ser
    e = [np.exp(np.asarray(a, dtype=np.float64)) for a in (trans, start, end)]   # forbidden (-1e4) -> 0
    run(p, log_z, alpha, beta, em, e[0], e[1], e[2], offsets, lengths)
    return p, log_z


def crf_viterbi(em, trans, start, end, offsets, lengths, parallel=None):
    """-> best (N,) int64 tag per row of the highest-scoring path of each sequence, score (B,) float64"""
    N, K = em.shape
    delta = np.empty((N, K), dtype=np.float64)   # best score of a path ending in j at the row
    back = np.empty((N, K), dtype=np.int64)      # its previous tag
    best = np.empty(N, dtype=np.int64)
    score = np.empty(lengths.shape[0], dtype=np.float64)
    run = _viterbi_par if _parallel(parallel, N * K * K) else _viterbi_ser
    run(best, score, delta, back, em, trans, start, end, offsets, lengths)
    return best, score


def _as64(a):
    return np.asarray(a, dtype=np.float64)


def _parallel(parallel, work: int) -> bool:
    return bool(parallel) if parallel is not None else worth_parallel(work, PARALLEL_WORK)
