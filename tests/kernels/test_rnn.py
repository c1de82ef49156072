"""Vanilla RNN kernels (seqtool/kernels/rnn.py), tanh and ReLU: the shared checks of reference.CellChecks,
PyTorch parity, and the shared helpers of kernels/_math.py."""
from itertools import pairwise

import numpy as np
import pytest
from numba import njit
from oracles import CellChecks, nn_module_parity, rnn_reference

from seqtool.kernels import _math
from seqtool.kernels.rnn import rnn_backward, rnn_forward
from seqtool.data.packing import make_packing

RELU = [False, True]


class TestRNN(CellChecks):
    G = 1
    forward, backward = staticmethod(rnn_forward), staticmethod(rnn_backward)

    @pytest.fixture(params=RELU, ids=["tanh", "relu"])
    def options(self, request):
        return (request.param,)

    def reference(self, xp, w_h, lengths, options):
        return rnn_reference(xp, w_h, lengths, int(options[0]))

    def long_run_weights(self, w_h, options):
        """ReLU explodes with large weights by design: use the identity, as the layer initialises it."""
        if not options[0]:
            return w_h
        return np.broadcast_to(np.eye(w_h.shape[1], dtype=w_h.dtype), w_h.shape).copy()


@pytest.mark.requires_torch
@pytest.mark.parametrize("relu", RELU)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch_rnn(torch, bidirectional, relu):
    torch.manual_seed(0)
    module = torch.nn.RNN(4, 3, nonlinearity="relu" if relu else "tanh", batch_first=True,
                          bidirectional=bidirectional, dtype=torch.float64)
    errors = nn_module_parity(torch, module, rnn_forward, rnn_backward, CellChecks.RAGGED, (relu,))
    assert max(errors.values()) < 1e-5, errors


# ---------------------------------------------------------------- kernels/_math.py
@njit(**_math.JIT)
def _activations(x, out):
    for i in range(x.size):
        y, s = _math.tanh(x[i]), _math.sigmoid(x[i])
        out[0, i], out[1, i], out[2, i], out[3, i] = y, s, _math.dtanh(y), _math.dsigmoid(s)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-15), (np.float32, 4e-7)])
def test_activations_in_each_precision(dtype, tol):
    x = np.concatenate([np.linspace(-40, 40, 100001), [0.0, 1e-30, -1e-30, 1e4, -1e4]]).astype(dtype)
    out = np.empty((4, x.size), dtype)
    _activations(x, out)
    t = np.tanh(x.astype(np.float64))
    s = 0.5 + 0.5 * np.tanh(0.5 * x.astype(np.float64))
    assert np.abs(out[0] - t).max() < tol and np.abs(out[1] - s).max() < tol
    assert np.abs(out).max() <= 1.0 and out[1].min() >= 0.0  # outputs stay in range: 1 - y^2 >= 0
    assert np.allclose(out[2], 1 - out[0].astype(np.float64) ** 2) and np.allclose(out[3], s * (1 - s), atol=1e-6)


@pytest.mark.parametrize("n, k, m", [(1, 1, 1), (2, 3, 4), (3, 5, 7), (7, 128, 513), (32, 16, 64)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_addmm_nt_every_edge(n, k, m, dtype):
    rng = np.random.default_rng(0)
    a, bt, c = (rng.standard_normal(s).astype(dtype) for s in ((n, k), (m, k), (n, m)))
    out = np.empty_like(c)
    _math.addmm_nt(out, c, a, 0, bt)
    want = c.astype(np.float64) + a.astype(np.float64) @ bt.T.astype(np.float64)
    assert np.abs(out - want).max() < (1e-12 if dtype == np.float64 else 1e-4)
    _math.addmm_nt(c, c, a, 0, bt)  # in place: accumulate
    assert np.array_equal(c, out)


@pytest.mark.parametrize("lengths", [[1], [2, 1], CellChecks.RAGGED, [40] + [1] * 31, list(range(1, 33))])
@pytest.mark.parametrize("streams", [1, 2])
def test_rank_chunks_cover_the_batch_at_the_least_cost(lengths, streams):
    p = make_packing(lengths)
    b = _math.rank_chunks(p.offsets, streams)
    C = min(len(lengths), max(1, -(-_math.THREADS // streams)))
    assert b[0] == 0 and b[-1] == len(lengths) and (np.diff(b) >= 1).all() and len(b) - 1 <= C
    L = np.sort(lengths)[::-1]

    def cost(r0, r1):  # rows + STEP_ROWS * steps of the chunk of ranks r0:r1
        return L[r0:r1].sum() + _math.STEP_ROWS * L[r0]
    worst = max(cost(r0, r1) for r0, r1 in pairwise(b))
    if C == 2:  # every single cut is no better
        assert worst == min(max(cost(0, k), cost(k, len(L))) for k in range(1, len(L)))
