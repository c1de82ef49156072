"""CRF kernels (seqtool/kernels/crf.py) against brute-force enumeration of every tag path."""
import itertools

import numpy as np
import pytest

from seqtool.kernels.crf import crf_backward, crf_forward, crf_marginals, crf_viterbi
from seqtool.model.gradcheck import numerical_gradient, relative_error
from seqtool.data.packing import make_packing, pack

K = 3
LENGTHS = [4, 1, 3, 4, 2]


def _problem(dtype=np.float64, lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    p = make_packing(lengths)
    T = max(lengths)
    em_pad = rng.normal(size=(len(lengths), T, K))
    tags_pad = rng.integers(0, K, size=(len(lengths), T))
    em = pack(em_pad, p).astype(dtype)
    tags = pack(tags_pad, p).astype(np.int64)
    trans, start, end = (rng.normal(size=s).astype(dtype) for s in ((K, K), (K,), (K,)))
    return p, em, tags, trans, start, end


def _score(e, y, trans, start, end):
    s = start[y[0]] + end[y[-1]] + sum(e[t, y[t]] for t in range(len(y)))
    return s + sum(trans[y[t - 1], y[t]] for t in range(1, len(y)))


def _brute(e, trans, start, end):
    """(log Z, node marginals (L, K), best path) of one sequence e (L, K) by enumeration."""
    L = e.shape[0]
    paths = list(itertools.product(range(K), repeat=L))
    scores = np.array([_score(e, y, trans, start, end) for y in paths])
    log_z = np.logaddexp.reduce(scores)
    marg = np.zeros((L, K))
    for y, s in zip(paths, scores):
        marg[np.arange(L), list(y)] += np.exp(s - log_z)
    return log_z, marg, np.array(paths[int(np.argmax(scores))])


def _args(p, em, tags, trans, start, end):
    return em, tags, trans, start, end, p.offsets, np.ascontiguousarray(p.lengths[p.order])


@pytest.mark.parametrize("parallel", [False, True])
def test_log_partition_nll_marginals_and_viterbi_match_enumeration(parallel):
    p, em, tags, trans, start, end = _problem()
    nll, log_z, _ = crf_forward(*_args(p, em, tags, trans, start, end), parallel=parallel)
    marg, log_z2 = crf_marginals(em, trans, start, end, p.offsets, p.lengths[p.order], parallel=parallel)
    best, score = crf_viterbi(em, trans, start, end, p.offsets, p.lengths[p.order], parallel=parallel)
    for b in range(p.batch):
        rows = p.rows[b, :p.lengths[b]]
        r = int(np.flatnonzero(p.order == b)[0])
        bz, bmarg, bpath = _brute(em[rows], trans, start, end)
        assert log_z[r] == pytest.approx(bz, abs=1e-10)
        assert log_z2[r] == pytest.approx(bz, abs=1e-10)
        assert nll[r] == pytest.approx(bz - _score(em[rows], tags[rows], trans, start, end), abs=1e-10)
        np.testing.assert_allclose(marg[rows], bmarg, atol=1e-12)
        np.testing.assert_array_equal(best[rows], bpath)
        assert score[r] == pytest.approx(_score(em[rows], bpath, trans, start, end), abs=1e-10)


@pytest.mark.parametrize("parallel", [False, True])
def test_gradient_matches_finite_differences(parallel):
    p, em, tags, trans, start, end = _problem()
    args = _args(p, em, tags, trans, start, end)
    w = np.random.default_rng(1).normal(size=p.batch)   # loss = sum_r w_r nll_r

    def loss():
        return float((crf_forward(*args)[0] * w).sum())

    _, log_z, alpha = crf_forward(*args)
    dem, dtrans, dstart, dend = crf_backward(w, *args, alpha, log_z, parallel=parallel)
    assert relative_error(dem, numerical_gradient(loss, em)) < 1e-6
    assert relative_error(dtrans.sum(0), numerical_gradient(loss, trans)) < 1e-6
    assert relative_error(dstart.sum(0), numerical_gradient(loss, start)) < 1e-6
    assert relative_error(dend.sum(0), numerical_gradient(loss, end)) < 1e-6


def test_emission_gradient_is_marginal_minus_gold():
    p, em, tags, trans, start, end = _problem()
    args = _args(p, em, tags, trans, start, end)
    _, log_z, alpha = crf_forward(*args)
    dem = crf_backward(np.ones(p.batch), *args, alpha, log_z)[0]
    marg, _ = crf_marginals(em, trans, start, end, p.offsets, p.lengths[p.order])
    np.testing.assert_allclose(dem, marg - np.eye(K)[tags], atol=1e-12)


def test_each_sequence_alone_equals_the_batch():
    p, em, tags, trans, start, end = _problem()
    nll, _, _ = crf_forward(*_args(p, em, tags, trans, start, end))
    best, _ = crf_viterbi(em, trans, start, end, p.offsets, p.lengths[p.order])
    for b in range(p.batch):
        rows = p.rows[b, :p.lengths[b]]
        q = make_packing([p.lengths[b]])
        one, _, _ = crf_forward(*_args(q, em[rows], tags[rows], trans, start, end))
        assert one[0] == pytest.approx(nll[np.flatnonzero(p.order == b)[0]], abs=1e-12)
        np.testing.assert_array_equal(crf_viterbi(em[rows], trans, start, end, q.offsets, q.lengths)[0],
                                      best[rows])


def test_float32_agrees_with_float64():
    p, em, tags, trans, start, end = _problem()
    args64 = _args(p, em, tags, trans, start, end)
    args32 = _args(p, *(a.astype(np.float32) for a in (em,)), tags,
                   *(a.astype(np.float32) for a in (trans, start, end)))
    n64, z64, a64 = crf_forward(*args64)
    n32, z32, a32 = crf_forward(*args32)
    np.testing.assert_allclose(n32, n64, atol=1e-5)
    d64 = crf_backward(np.ones(p.batch), *args64, a64, z64)[0]
    d32 = crf_backward(np.ones(p.batch), *args32, a32, z32)[0]
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, atol=1e-5)


def test_forbidden_transitions_are_never_decoded():
    p, em, tags, trans, start, end = _problem(lengths=[6, 5, 6])
    trans = trans.copy()
    trans[:, 2] = -1e4       # tag 2 can never be reached after another tag
    start[2] = -1e4
    best, _ = crf_viterbi(em, trans, start, end, p.offsets, p.lengths[p.order])
    assert not (best == 2).any()
    marg, _ = crf_marginals(em, trans, start, end, p.offsets, p.lengths[p.order])
    assert marg[:, 2].max() < 1e-100
    np.testing.assert_allclose(marg.sum(1), 1.0)


def test_parallel_drivers_equal_serial_on_a_large_batch():
    lengths = np.random.default_rng(5).integers(1, 40, size=300)
    p, em, tags, trans, start, end = _problem(np.float32, lengths=list(lengths))
    args = _args(p, em, tags, trans, start, end)
    outs = {}
    for par in (False, True):
        nll, log_z, alpha = crf_forward(*args, parallel=par)
        grads = crf_backward(np.ones(p.batch), *args, alpha, log_z, parallel=par)
        marg, _ = crf_marginals(em, trans, start, end, p.offsets, args[-1], parallel=par)
        best, _ = crf_viterbi(em, trans, start, end, p.offsets, args[-1], parallel=par)
        outs[par] = (nll, *grads, marg, best)
    for a, b in zip(outs[False], outs[True]):
        np.testing.assert_array_equal(a, b)


def _brute_pairs(e, trans, start, end):
    """sum over t of p(y_{t-1} = i, y_t = j) (K, K) of one sequence, by enumeration."""
    L = e.shape[0]
    paths = list(itertools.product(range(K), repeat=L))
    scores = np.array([_score(e, y, trans, start, end) for y in paths])
    prob = np.exp(scores - np.logaddexp.reduce(scores))
    pairs = np.zeros((K, K))
    for y, q in zip(paths, prob):
        for t in range(1, L):
            pairs[y[t - 1], y[t]] += q
    return pairs


@pytest.mark.parametrize("scale", [1.0, 300.0, 3000.0])
def test_scores_far_apart_still_match_enumeration(scale):
    # the forward and backward sums are factored (K exps a step, not K*K); with scores hundreds apart a factor
    # underflows or the pairwise scale would overflow, and the kernels must switch to summing term by term
    p, em, tags, trans, start, end = _problem(seed=3)
    em, trans = em * scale, trans * scale
    args = _args(p, em, tags, trans, start, end)
    nll, log_z, alpha = crf_forward(*args)
    dem, dtrans, _, _ = crf_backward(np.ones(p.batch), *args, alpha, log_z)
    for b in range(p.batch):
        rows = p.rows[b, :p.lengths[b]]
        r = int(np.flatnonzero(p.order == b)[0])
        bz, bmarg, _ = _brute(em[rows], trans, start, end)
        assert log_z[r] == pytest.approx(bz, rel=1e-12, abs=1e-9)
        gold = np.zeros_like(bmarg)
        gold[np.arange(len(rows)), tags[rows]] = 1
        np.testing.assert_allclose(dem[rows], bmarg - gold, atol=1e-9)
        pairs = _brute_pairs(em[rows], trans, start, end)
        for t in range(1, len(rows)):
            pairs[tags[rows][t - 1], tags[rows][t]] -= 1
        np.testing.assert_allclose(dtrans[r], pairs, atol=1e-9)
