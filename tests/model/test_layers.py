"""Layers and combinators: float64 central differences for every parameter and input, torch parity."""
import numpy as np
import pytest
from layer_checks import TOL, assert_grads, ctx_factory, random_rows

from seqtool.model.gradcheck import numerical_gradient, relative_error
from seqtool.kernels.loss import triplet_loss
from seqtool.model.layers import Context, Dense, Dropout, Embedding, L2Normalize, Pool, Serial
from seqtool.model.optim import Adam
from seqtool.data.packing import make_packing
from seqtool.model.recurrent import Residual



# ---------------------------------------------------------------- single layers

def test_dense_gradients():
    assert_grads(Dense(5, 3).astype(np.float64), random_rows(7, 5), ctx_factory())


def test_dense_torch_parity():
    torch = pytest.importorskip("torch")
    layer = Dense(5, 3).astype(np.float64)
    layer.params["b"][:] = np.arange(3)
    x, dy = random_rows(7, 5), random_rows(7, 3, seed=1)
    lin = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer.params["W"].T))
        lin.bias.copy_(torch.from_numpy(layer.params["b"]))
    tx = torch.from_numpy(x).requires_grad_()
    ty = lin(tx)
    ty.backward(torch.from_numpy(dy))
    y, backward = layer(x, ctx_factory()())
    dx = backward(dy)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], lin.weight.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], lin.bias.grad.numpy(), atol=1e-12)


def test_embedding_gradients_touch_only_used_rows():
    make_ctx = ctx_factory()
    n = make_ctx().packing.n_rows
    ids = np.random.default_rng(0).integers(1, 6, size=n)       # ids 6..9 unused, 0 = <PAD>
    layer = Embedding(10, 4).astype(np.float64)
    assert_grads(layer, ids, make_ctx)
    np.testing.assert_array_equal(layer.grad_rows()[0], np.unique(ids))
    assert not layer.grads["E"][6:].any() and not layer.grads["E"][0].any()
    layer.zero_grads()
    assert not layer.grads["E"].any() and len(layer.grad_rows()[0]) == 0


def test_embedding_pad_row_stays_zero_under_training():
    layer = Embedding(10, 4)
    ctx = ctx_factory([3, 2])()
    opt = Adam(layer.param_list(), lr=0.1, weight_decay=0.01)
    for _ in range(3):
        layer.zero_grads()
        y, backward = layer(np.array([0, 3, 0, 5, 0]), ctx, train=True)
        backward(np.ones_like(y))
        opt.step(layer.grad_list(), layer.grad_rows())
    assert not layer.params["E"][0].any()
    assert layer.params["E"].dtype == np.float32


def test_dropout_is_identity_at_inference_and_scaled_in_training():
    x = np.ones((2000, 10))
    ctx = ctx_factory()()
    y, backward = Dropout(0.3)(x, ctx, train=False)
    assert y is x
    y, backward = Dropout(0.3)(x, ctx, train=True)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7])
    assert y.mean() == pytest.approx(1.0, abs=0.02)                   # inverted dropout keeps the mean
    np.testing.assert_array_equal(backward(np.ones_like(x)), y)       # same mask in backward


def test_dropout_gradients_with_fixed_mask():
    assert_grads(Serial(Dense(5, 4), Dropout(0.5)).astype(np.float64), random_rows(7, 5), ctx_factory(),
                  train=True)


@pytest.mark.parametrize("kind,bidi", [("mean", False), ("max", False), ("last", False), ("last", True)])
def test_pool_gradients(kind, bidi):
    make_ctx = ctx_factory()
    assert_grads(Pool(kind, bidirectional=bidi), random_rows(make_ctx().packing.n_rows, 6), make_ctx)


def test_pool_outputs_are_in_input_order():
    make_ctx = ctx_factory([2, 3])
    ctx = make_ctx()
    x = np.zeros((5, 2))
    x[ctx.packing.rows[0, :2]] = [[1, 10], [3, 30]]                  # sequence 0 (length 2)
    x[ctx.packing.rows[1, :3]] = [[5, 50], [6, 60], [7, 70]]          # sequence 1 (length 3)
    np.testing.assert_allclose(Pool("mean")(x, ctx)[0], [[2, 20], [6, 60]])
    np.testing.assert_allclose(Pool("max")(x, ctx)[0], [[3, 30], [7, 70]])
    np.testing.assert_allclose(Pool("last")(x, ctx)[0], [[3, 30], [7, 70]])
    np.testing.assert_allclose(Pool("last", bidirectional=True)(x, ctx)[0], [[3, 10], [7, 50]])


def test_l2normalize_gradients_and_torch_parity():
    x = random_rows(5, 4)
    assert_grads(L2Normalize(), x, ctx_factory())
    torch = pytest.importorskip("torch")
    y, _ = L2Normalize()(x, None)
    np.testing.assert_allclose(y, torch.nn.functional.normalize(torch.from_numpy(x), dim=1).numpy(),
                               atol=1e-12)


def test_l2normalize_zero_row_and_tiny_row():
    x = np.array([[0.0, 0.0], [3e-13, 4e-13], [3.0, 4.0]])
    y, backward = L2Normalize()(x, None)
    np.testing.assert_allclose(y, [[0, 0], [0.3, 0.4], [0.6, 0.8]])
    dx = backward(np.ones_like(x))
    np.testing.assert_allclose(dx[:2], 1e12)                 # clamped rows: y = x / eps
    assert np.isfinite(dx).all()


def test_embedding_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\)"):
        Embedding(5, 2)(np.array([1, 5]), None)


def test_residual_and_serial_gradients():
    model = Serial(Dense(4, 4), Residual(Serial(Dense(4, 4), Dense(4, 4))), Dense(4, 2)).astype(np.float64)
    assert_grads(model, random_rows(7, 4), ctx_factory())


def test_context_rev_matches_packing():
    ctx = ctx_factory([5, 1, 3, 5, 2, 4])()
    np.testing.assert_array_equal(ctx.rev, ctx.packing.reverse_index())


def test_names_and_parameter_order():
    model = Serial(Embedding(20, 8), Dense(8, 3))
    assert repr(model) == "Serial(Embedding_8 > Dense_3)"
    assert list(model.named_params()) == ["0.E", "1.W", "1.b"]
    assert model.grad_rows()[1:] == [None, None]


def test_siamese_loss_through_normalisation():
    # the encoder is applied to both sides of each pair; grads of both uses add up
    rng = np.random.default_rng(3)
    lens1, lens2 = [3, 1, 4, 2], [2, 5, 1, 3]
    p1, p2 = make_packing(lens1), make_packing(lens2)
    ids1, ids2 = rng.integers(1, 12, size=p1.n_rows), rng.integers(1, 12, size=p2.n_rows)
    enc = Serial(Embedding(12, 5), Pool("mean"), Dense(5, 4), L2Normalize()).astype(np.float64)

    def loss_and_grads():
        v1, b1 = enc(ids1, Context(p1))
        v2, b2 = enc(ids2, Context(p2))
        loss, d1, d2 = triplet_loss(v1, v2, margin=0.5)
        return loss, (b1, b2, d1, d2)

    enc.zero_grads()
    loss, (b1, b2, d1, d2) = loss_and_grads()
    assert loss > 0
    b1(d1)
    b2(d2)
    for qname, layer, name in enc.walk():
        num = numerical_gradient(lambda: loss_and_grads()[0], layer.params[name])
        assert relative_error(layer.grads[name], num) < TOL, qname


def test_astype_converts_parameters_and_gradients():
    model = Serial(Embedding(5, 3), Dense(3, 2)).astype(np.float64)
    assert all(p.dtype == np.float64 for p in model.param_list())
    assert all(g.dtype == np.float64 for g in model.grad_list())
