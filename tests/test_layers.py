"""Layers and combinators: float64 central differences for every parameter and input, torch parity."""
import numpy as np
import pytest

from seqtool.model.gradcheck import gradient_check, numerical_gradient, relative_error
from seqtool.kernels.loss import softmax_xent, triplet_loss
from seqtool.model.layers import Context, Dense, Dropout, Embedding, L2Normalize, Pool, Serial
from seqtool.model.optim import Adam
from seqtool.data.packing import make_packing
from seqtool.model.recurrent import Recurrent, Residual, Stack

LENGTHS = [4, 1, 6, 3, 6, 2]
TOL = 1e-6


def _ctx_factory(lengths=LENGTHS, seed=7):
    p = make_packing(lengths)
    return lambda: Context(p, np.random.default_rng(seed))


def _x(n_rows, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n_rows, d))


def _assert_grads(layer, x, make_ctx, train=False):
    errors = gradient_check(layer, x, make_ctx, train)
    assert errors and max(errors.values()) < TOL, errors


# ---------------------------------------------------------------- single layers

def test_dense_gradients():
    _assert_grads(Dense(5, 3).astype(np.float64), _x(7, 5), _ctx_factory())


def test_dense_torch_parity():
    torch = pytest.importorskip("torch")
    layer = Dense(5, 3).astype(np.float64)
    layer.params["b"][:] = np.arange(3)
    x, dy = _x(7, 5), _x(7, 3, seed=1)
    lin = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer.params["W"].T))
        lin.bias.copy_(torch.from_numpy(layer.params["b"]))
    tx = torch.from_numpy(x).requires_grad_()
    ty = lin(tx)
    ty.backward(torch.from_numpy(dy))
    y, backward = layer(x, _ctx_factory()())
    dx = backward(dy)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], lin.weight.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], lin.bias.grad.numpy(), atol=1e-12)


def test_embedding_gradients_touch_only_used_rows():
    make_ctx = _ctx_factory()
    n = make_ctx().packing.n_rows
    ids = np.random.default_rng(0).integers(1, 6, size=n)       # ids 6..9 unused, 0 = <PAD>
    layer = Embedding(10, 4).astype(np.float64)
    _assert_grads(layer, ids, make_ctx)
    np.testing.assert_array_equal(layer.grad_rows()[0], np.unique(ids))
    assert not layer.grads["E"][6:].any() and not layer.grads["E"][0].any()
    layer.zero_grads()
    assert not layer.grads["E"].any() and len(layer.grad_rows()[0]) == 0


def test_embedding_pad_row_stays_zero_under_training():
    layer = Embedding(10, 4)
    ctx = _ctx_factory([3, 2])()
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
    ctx = _ctx_factory()()
    y, backward = Dropout(0.3)(x, ctx, train=False)
    assert y is x
    y, backward = Dropout(0.3)(x, ctx, train=True)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7])
    assert y.mean() == pytest.approx(1.0, abs=0.02)                   # inverted dropout keeps the mean
    np.testing.assert_array_equal(backward(np.ones_like(x)), y)       # same mask in backward


def test_dropout_gradients_with_fixed_mask():
    _assert_grads(Serial(Dense(5, 4), Dropout(0.5)).astype(np.float64), _x(7, 5), _ctx_factory(),
                  train=True)


@pytest.mark.parametrize("kind,bidi", [("mean", False), ("max", False), ("last", False), ("last", True)])
def test_pool_gradients(kind, bidi):
    make_ctx = _ctx_factory()
    _assert_grads(Pool(kind, bidirectional=bidi), _x(make_ctx().packing.n_rows, 6), make_ctx)


def test_pool_outputs_are_in_input_order():
    make_ctx = _ctx_factory([2, 3])
    ctx = make_ctx()
    x = np.zeros((5, 2))
    x[ctx.packing.rows[0, :2]] = [[1, 10], [3, 30]]                  # sequence 0 (length 2)
    x[ctx.packing.rows[1, :3]] = [[5, 50], [6, 60], [7, 70]]          # sequence 1 (length 3)
    np.testing.assert_allclose(Pool("mean")(x, ctx)[0], [[2, 20], [6, 60]])
    np.testing.assert_allclose(Pool("max")(x, ctx)[0], [[3, 30], [7, 70]])
    np.testing.assert_allclose(Pool("last")(x, ctx)[0], [[3, 30], [7, 70]])
    np.testing.assert_allclose(Pool("last", bidirectional=True)(x, ctx)[0], [[3, 10], [7, 50]])


def test_l2normalize_gradients_and_torch_parity():
    x = _x(5, 4)
    _assert_grads(L2Normalize(), x, _ctx_factory())
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
    _assert_grads(model, _x(7, 4), _ctx_factory())


def test_context_rev_matches_packing():
    ctx = _ctx_factory([5, 1, 3, 5, 2, 4])()
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


# ---------------------------------------------------------------- recurrent layers (cell kernels in seqtool/kernels)

RECURRENT_CASES = [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell,activation", RECURRENT_CASES)
def test_recurrent_gradients(cell, activation, bidirectional):
    layer = Recurrent(cell, 3, 4, bidirectional, activation, rng=np.random.default_rng(1))
    layer.astype(np.float64)
    if activation == "relu":                         # move off the identity init so the kinks are rare
        layer.params["w_h"] += np.random.default_rng(2).normal(scale=0.3, size=layer.params["w_h"].shape)
    make_ctx = _ctx_factory()
    _assert_grads(layer, _x(make_ctx().packing.n_rows, 3), make_ctx)


def test_deep_bidirectional_residual_stack_with_dropout_gradients():
    make_ctx = _ctx_factory([5, 2, 1, 4, 5])
    stack = Stack("lstm", 3, 2, depth=3, bidirectional=True, dropout=0.3, residual=True,
                  rng=np.random.default_rng(4)).astype(np.float64)
    assert repr(stack) == "BiLSTM_2x3"
    assert [type(layer).__name__ for layer in stack.layers] == [
        "Recurrent", "Dropout", "Residual", "Dropout", "Residual"]
    _assert_grads(stack, _x(make_ctx().packing.n_rows, 3), make_ctx, train=True)


def test_gru_stack_into_pool_gradients():
    make_ctx = _ctx_factory()
    model = Serial(Stack("gru", 3, 3, depth=2, residual=True), Pool("last"), Dense(3, 2)).astype(np.float64)
    _assert_grads(model, _x(make_ctx().packing.n_rows, 3), make_ctx)


def test_recurrent_initialisation():
    lstm = Recurrent("lstm", 5, 6, bidirectional=True)
    w_h, b = lstm.params["w_h"], lstm.params["b"]
    assert w_h.shape == (2, 6, 24) and lstm.params["w_x"].shape == (2, 5, 24) and b.shape == (2, 24)
    np.testing.assert_array_equal(b[:, 6:12], 1.0)                 # forget gate (i, f, g, o)
    assert not b[:, :6].any() and not b[:, 12:].any()
    block = w_h[1, :, 12:18].astype(np.float64)                      # each gate's block is orthogonal
    np.testing.assert_allclose(block.T @ block, np.eye(6), atol=1e-6)
    irnn = Recurrent("rnn", 5, 6, activation="relu")
    np.testing.assert_array_equal(irnn.params["w_h"][0], np.eye(6))
    assert repr(lstm) == "BiLSTM_6" and repr(irnn) == "ReLURNN_6" and repr(Recurrent("gru", 2, 3)) == "GRU_3"


def test_recurrent_float32_end_to_end():
    ctx = _ctx_factory()()
    model = Serial(Embedding(10, 4), Stack("lstm", 4, 3, bidirectional=True), Dense(6, 2))
    y, backward = model(np.arange(ctx.packing.n_rows) % 9 + 1, ctx, train=True)
    assert y.dtype == np.float32
    backward(np.ones_like(y))
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in model.grad_list())


def test_tagger_matches_torch_bidirectional_lstm():
    """Serial(Embedding, bi-LSTM, Dense) + mean token cross-entropy vs torch on packed sequences."""
    torch = pytest.importorskip("torch")
    V, E, H, K = 15, 5, 4, 3
    lengths = [5, 2, 7, 1, 4]
    rng = np.random.default_rng(0)
    p = make_packing(lengths)
    seqs = [rng.integers(1, V, size=n) for n in lengths]
    tags = [rng.integers(0, K, size=n) for n in lengths]
    ids = np.empty(p.n_rows, dtype=np.int64)
    gold = np.empty(p.n_rows, dtype=np.int64)
    for b, n in enumerate(lengths):
        ids[p.rows[b, :n]], gold[p.rows[b, :n]] = seqs[b], tags[b]
    lstm = Recurrent("lstm", E, H, bidirectional=True)
    lstm.params["b"] += rng.normal(size=lstm.params["b"].shape)
    model = Serial(Embedding(V, E), lstm, Dense(2 * H, K)).astype(np.float64)
    emb, _, dense = model.layers

    t_emb = torch.nn.Embedding(V, E, padding_idx=0).double()
    t_lstm = torch.nn.LSTM(E, H, bidirectional=True).double()
    t_lin = torch.nn.Linear(2 * H, K).double()
    with torch.no_grad():
        t_emb.weight.copy_(torch.from_numpy(emb.params["E"]))
        for s, suffix in enumerate(["", "_reverse"]):
            getattr(t_lstm, "weight_ih_l0" + suffix).copy_(torch.from_numpy(lstm.params["w_x"][s].T))
            getattr(t_lstm, "weight_hh_l0" + suffix).copy_(torch.from_numpy(lstm.params["w_h"][s].T))
            getattr(t_lstm, "bias_ih_l0" + suffix).copy_(torch.from_numpy(lstm.params["b"][s]))
            getattr(t_lstm, "bias_hh_l0" + suffix).zero_()
        t_lin.weight.copy_(torch.from_numpy(dense.params["W"].T))
        t_lin.bias.copy_(torch.from_numpy(dense.params["b"]))
    packed = torch.nn.utils.rnn.pack_sequence([torch.from_numpy(s) for s in seqs], enforce_sorted=False)
    t_tags = torch.nn.utils.rnn.pack_sequence([torch.from_numpy(t) for t in tags], enforce_sorted=False)
    t_x = torch.nn.utils.rnn.PackedSequence(t_emb(packed.data), packed.batch_sizes, packed.sorted_indices,
                                            packed.unsorted_indices)
    t_out, (t_hn, _) = t_lstm(t_x)
    t_logits = t_lin(t_out.data)
    t_loss = torch.nn.functional.cross_entropy(t_logits, t_tags.data)
    t_loss.backward()
    np.testing.assert_array_equal(t_tags.data.numpy(), gold)     # torch packs exactly as we do

    ctx = Context(p)
    model.zero_grads()
    h, _ = Serial(emb, lstm)(ids, ctx)
    logits, backward = model(ids, ctx, train=True)
    loss, dlogits = softmax_xent(logits, gold)
    backward(dlogits)

    tol = dict(rtol=1e-5, atol=1e-10)
    assert loss == pytest.approx(t_loss.item(), rel=1e-10)
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), **tol)
    np.testing.assert_allclose(h, t_out.data.detach().numpy(), **tol)
    # bidirectional "last" pooling = torch's final states (forward at the last token, backward at the first)
    np.testing.assert_allclose(Pool("last", bidirectional=True)(h, ctx)[0],
                               torch.cat([t_hn[0], t_hn[1]], dim=1).detach().numpy(), **tol)
    np.testing.assert_allclose(emb.grads["E"], t_emb.weight.grad.numpy(), **tol)
    for s, suffix in enumerate(["", "_reverse"]):
        np.testing.assert_allclose(lstm.grads["w_x"][s], getattr(t_lstm, "weight_ih_l0" + suffix).grad.numpy().T,
                                   **tol)
        np.testing.assert_allclose(lstm.grads["w_h"][s], getattr(t_lstm, "weight_hh_l0" + suffix).grad.numpy().T,
                                   **tol)
        np.testing.assert_allclose(lstm.grads["b"][s], getattr(t_lstm, "bias_ih_l0" + suffix).grad.numpy(), **tol)
    np.testing.assert_allclose(dense.grads["W"], t_lin.weight.grad.numpy().T, **tol)
    np.testing.assert_allclose(dense.grads["b"], t_lin.bias.grad.numpy(), **tol)


def test_float32_forward_agrees_with_float64():
    ctx = _ctx_factory()()
    ids = np.arange(ctx.packing.n_rows) % 9 + 1
    m32 = Serial(Embedding(10, 4), Stack("gru", 4, 3, depth=2, bidirectional=True), Pool("mean"), Dense(6, 2))
    y32, _ = m32(ids, ctx)
    y64, _ = m32.astype(np.float64)(ids, ctx)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


def test_one_training_step_lowers_the_loss():
    from seqtool.model.optim import clip_by_global_norm
    rng = np.random.default_rng(0)
    p = make_packing(rng.integers(1, 9, size=8))
    ids = rng.integers(1, 20, size=p.n_rows)
    tags = ids % 3                                   # learnable from the token alone
    model = Serial(Embedding(20, 8), Stack("lstm", 8, 8, bidirectional=True), Dense(16, 3))
    opt = Adam(model.param_list(), lr=0.05)
    losses = []
    for _ in range(5):
        model.zero_grads()
        logits, backward = model(ids, Context(p, rng), train=True)
        loss, dlogits = softmax_xent(logits, tags)
        backward(dlogits)
        rows = model.grad_rows()
        assert clip_by_global_norm(model.grad_list(), 5.0, rows) > 0
        opt.step(model.grad_list(), rows)
        losses.append(loss)
    assert losses[-1] < losses[0] - 0.1
