"""Clipping and optimisers: exact clipping, overflow safety, torch.optim parity, sparse rows."""
import numpy as np
import pytest

from seqtool.model.optim import SGD, Adam, clip_by_global_norm, clip_by_value, global_norm


def _grads(scale=1.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=s) * scale).astype(dtype) for s in [(7, 3), (3,), (2, 4, 5)]]


def _norm(grads):
    return float(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads)))


# ---------------------------------------------------------------- clipping

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exploding_gradients_are_scaled_to_max_norm(dtype):
    grads = _grads(1e6, dtype)
    before = _norm(grads)
    norm = clip_by_global_norm(grads, 5.0)
    assert norm == pytest.approx(before, rel=1e-6)
    assert _norm(grads) == pytest.approx(5.0, rel=1e-6)
    assert all(np.isfinite(g).all() and g.dtype == dtype for g in grads)



def _run_ours(optimizer, params, grad_seq, **options):
    """Copies of ``params`` after our ``optimizer`` took one step per gradient set of ``grad_seq``."""
    ours = [p.copy() for p in params]
    opt = optimizer(ours, **options)
    for grads in grad_seq:
        opt.step(grads)
    return ours

def test_clip_survives_overflowing_squares():
    grads = [np.array([3e200, -4e200]), np.array([0.0])]
    norm = clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5e200, rel=1e-12)
    np.testing.assert_allclose(grads[0], [0.6, -0.8], rtol=1e-12)


def test_small_gradients_are_left_alone():
    grads = _grads(1e-3)
    copy = [g.copy() for g in grads]
    norm = clip_by_global_norm(grads, 5.0)
    assert norm == pytest.approx(_norm(copy), rel=1e-12)
    for g, c in zip(grads, copy):
        np.testing.assert_array_equal(g, c)


def test_non_finite_norm_is_reported_not_applied():
    grads = [np.array([1.0, np.inf]), np.array([2.0])]
    assert clip_by_global_norm(grads, 1.0) == np.inf
    assert grads[1][0] == 2.0


def test_clip_with_rows_equals_dense():
    grads = _grads(10.0)
    table = np.zeros((50, 3))
    rows = np.array([3, 17, 40])
    table[rows] = np.random.default_rng(1).normal(size=(3, 3)) * 10
    dense = [g.copy() for g in grads] + [table.copy()]
    sparse = grads + [table]
    assert global_norm(sparse, [None, None, None, rows]) == pytest.approx(global_norm(dense), rel=1e-12)
    n1 = clip_by_global_norm(dense, 2.0)
    n2 = clip_by_global_norm(sparse, 2.0, [None, None, None, rows])
    assert n1 == pytest.approx(n2, rel=1e-12)
    for a, b in zip(dense, sparse):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_clip_by_value():
    grads = [np.array([-3.0, 0.5, 7.0])]
    clip_by_value(grads, 1.0)
    np.testing.assert_array_equal(grads[0], [-1.0, 0.5, 1.0])


# ---------------------------------------------------------------- torch parity

def _torch_run(torch_opt, params, grad_seq, **kw):
    torch = pytest.importorskip("torch")
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    opt = torch_opt(tp, **kw)
    for grads in grad_seq:
        for t, g in zip(tp, grads):
            t.grad = torch.from_numpy(g.copy())
        opt.step()
    return [t.detach().numpy() for t in tp]


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_matches_torch(wd):
    torch = pytest.importorskip("torch")
    params = _grads(seed=5)
    grad_seq = [_grads(seed=10 + k) for k in range(6)]
    ref = _torch_run(torch.optim.Adam, params, grad_seq, lr=0.01, betas=(0.8, 0.99), eps=1e-7,
                     weight_decay=wd)
    ours = _run_ours(Adam, params, grad_seq, lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=wd)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_adam_float32_matches_torch_float32():
    torch = pytest.importorskip("torch")
    params = _grads(seed=5, dtype=np.float32)
    grad_seq = [_grads(seed=10 + k, dtype=np.float32) for k in range(6)]
    ref = _torch_run(torch.optim.Adam, params, grad_seq, lr=0.01, weight_decay=0.01)
    ours = _run_ours(Adam, params, grad_seq, lr=0.01, weight_decay=0.01)
    for a, b in zip(ours, ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_torch(momentum, nesterov):
    torch = pytest.importorskip("torch")
    params = _grads(seed=5)
    grad_seq = [_grads(seed=10 + k) for k in range(4)]
    ref = _torch_run(torch.optim.SGD, params, grad_seq, lr=0.1, momentum=momentum, nesterov=nesterov,
                     weight_decay=0.001)
    ours = _run_ours(SGD, params, grad_seq, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=0.001)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_adam_rows_match_torch_sparse_adam():
    # SparseAdam adds eps to sqrt(v) before bias correction, Adam (and we) after it:
    # with a negligible eps both are the same lazy update.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    table = rng.normal(size=(20, 3))
    ref = torch.tensor(table.copy(), requires_grad=True)
    topt = torch.optim.SparseAdam([ref], lr=0.05, eps=1e-14)
    ours = table.copy()
    opt = Adam([ours], lr=0.05, eps=1e-14)
    touched = set()
    for step in range(5):
        rows = np.unique(rng.integers(0, 20, size=6))
        g = np.zeros_like(table)
        g[rows] = rng.normal(size=(len(rows), 3))
        ref.grad = torch.sparse_coo_tensor(torch.from_numpy(rows)[None], torch.from_numpy(g[rows]),
                                           (20, 3), check_invariants=True)
        topt.step()
        opt.step([g], [rows])
        touched.update(rows.tolist())
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-11)
    untouched = sorted(set(range(20)) - touched)
    np.testing.assert_array_equal(ours[untouched], table[untouched])


def test_sgd_rows_without_momentum_equal_dense():
    table = np.random.default_rng(0).normal(size=(10, 2))
    g = np.zeros_like(table)
    rows = np.array([1, 6])
    g[rows] = 1.0
    a, b = table.copy(), table.copy()
    SGD([a], lr=0.5).step([g])
    SGD([b], lr=0.5).step([g], [rows])
    np.testing.assert_array_equal(a, b)


def test_adam_float32_in_place():
    p = np.ones((4, 3), dtype=np.float32)
    view = p
    opt = Adam([p], lr=0.1)
    opt.step([np.ones_like(p)])
    assert view.dtype == np.float32
    np.testing.assert_allclose(view, 0.9, rtol=1e-6)     # first Adam step moves by lr * sign(g)


def test_optimiser_checks_lengths():
    with pytest.raises(ValueError, match="gradients for"):
        Adam([np.zeros(2)]).step([])


def test_global_norm_of_nan_gradients_is_nan_not_an_error():
    from seqtool.model.optim import clip_by_global_norm, global_norm

    grads = [np.full((3, 2), np.nan), np.zeros(4)]
    assert np.isnan(global_norm(grads))                    # was ZeroDivisionError: NaN's absmax read as 0
    assert np.isnan(clip_by_global_norm(grads, 5.0))
    assert np.isinf(global_norm([np.array([np.inf, 1.0])]))
