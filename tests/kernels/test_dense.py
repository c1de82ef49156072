"""Embedding and pooling kernels: numpy references, float64 central differences, torch parity."""
import numpy as np
import pytest

from seqtool.kernels import dense as kd
from seqtool.model.gradcheck import numerical_gradient, relative_error
from seqtool.data.packing import make_packing, unpack

LENGTHS = [3, 7, 1, 5, 7, 2]


@pytest.fixture
def packed():
    p = make_packing(LENGTHS)
    x = np.random.default_rng(1).normal(size=(p.n_rows, 4))
    return p, x


# ---------------------------------------------------------------- embedding

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_forward_gathers_rows(dtype):
    table = np.random.default_rng(0).normal(size=(10, 3)).astype(dtype)
    ids = np.array([4, 0, 4, 9, 2], dtype=np.int64)
    out = kd.embedding_forward(table, ids)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, table[ids])


def test_embedding_backward_scatter_adds_and_skips_pad():
    rng = np.random.default_rng(0)
    ids = np.array([4, 0, 4, 9, 2, 4], dtype=np.int64)
    dout = rng.normal(size=(6, 3))
    dtable = np.ones((10, 3))
    kd.embedding_backward(dtable, ids, dout, 0)
    ref = np.ones((10, 3))
    keep = ids != 0
    np.add.at(ref, ids[keep], dout[keep])        # slow reference: repeated ids accumulate
    np.testing.assert_allclose(dtable, ref, rtol=1e-12)
    assert np.all(dtable[0] == 1.0)              # <PAD> untouched


def test_embedding_torch_parity():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    table = rng.normal(size=(12, 5))
    table[0] = 0
    ids = rng.integers(0, 12, size=20)
    dout = rng.normal(size=(20, 5))
    emb = torch.nn.Embedding(12, 5, padding_idx=0).double()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table))
    y = emb(torch.from_numpy(ids))
    y.backward(torch.from_numpy(dout))
    dtable = np.zeros_like(table)
    kd.embedding_backward(dtable, ids, dout, 0)
    np.testing.assert_allclose(kd.embedding_forward(table, ids), y.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dtable, emb.weight.grad.numpy(), atol=1e-12)


# ---------------------------------------------------------------- pooling references (on padded data)

def test_mean_pool_matches_padded_reference(packed):
    p, x = packed
    y = kd.mean_pool_forward(x, p.rows, p.lengths)
    padded = unpack(x, p)                                     # (B, T, d), zeros past each length
    np.testing.assert_allclose(y, padded.sum(axis=1) / p.lengths[:, None], rtol=1e-12)


def test_max_pool_ignores_padding(packed):
    p, x = packed
    x = x - 10.0                                              # all negative: zero padding would win
    y, arg = kd.max_pool_forward(x, p.rows, p.lengths)
    padded = unpack(x, p, fill=-np.inf)
    np.testing.assert_array_equal(y, padded.max(axis=1))
    np.testing.assert_array_equal(x[arg, np.arange(4)], y)


def test_last_pool_takes_last_and_first(packed):
    p, x = packed
    last, first = p.last_rows(), p.rows[:, 0].copy()
    y = kd.last_pool_forward(x, last, first, 2)
    padded = unpack(x, p)
    b = np.arange(p.batch)
    np.testing.assert_array_equal(y[:, :2], padded[b, p.lengths - 1, :2])
    np.testing.assert_array_equal(y[:, 2:], padded[:, 0, 2:])


# ---------------------------------------------------------------- pooling gradients (float64 central differences)

def _check_pool_grad(forward, backward, x, n_rows):
    R = np.random.default_rng(3).normal(size=forward(x).shape)
    dx = backward(R, n_rows)
    num = numerical_gradient(lambda: float((forward(x) * R).sum()), x)
    assert relative_error(dx, num) < 1e-6


def test_mean_pool_gradient(packed):
    p, x = packed
    _check_pool_grad(lambda x: kd.mean_pool_forward(x, p.rows, p.lengths),
                     lambda dy, n: kd.mean_pool_backward(dy, p.rows, p.lengths, n), x, p.n_rows)


def test_max_pool_gradient(packed):
    p, x = packed
    _, arg = kd.max_pool_forward(x, p.rows, p.lengths)     # distinct values: no tie within eps
    _check_pool_grad(lambda x: kd.max_pool_forward(x, p.rows, p.lengths)[0],
                     lambda dy, n: kd.max_pool_backward(dy, arg, n), x, p.n_rows)


def test_last_pool_gradient(packed):
    p, x = packed
    last, first = p.last_rows(), p.rows[:, 0].copy()
    _check_pool_grad(lambda x: kd.last_pool_forward(x, last, first, 3),
                     lambda dy, n: kd.last_pool_backward(dy, last, first, 3, n), x, p.n_rows)


def test_pool_keeps_float32(packed):
    p, x = packed
    x = x.astype(np.float32)
    assert kd.mean_pool_forward(x, p.rows, p.lengths).dtype == np.float32
    assert kd.max_pool_forward(x, p.rows, p.lengths)[0].dtype == np.float32
