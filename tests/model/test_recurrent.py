"""Recurrent layers and stacks (model/recurrent.py): gradients of every cell, stacks with residuals and
dropout, initialisation, float32, PyTorch parity, and the cell registry."""
import numpy as np
import pytest
from layer_checks import assert_grads, ctx_factory, random_rows

from seqtool.data.packing import make_packing
from seqtool.kernels import CELL_GATES
from seqtool.kernels.loss import softmax_xent
from seqtool.kernels.numpy_path import cell_forward
from seqtool.model.layers import Context, Dense, Embedding, Pool, Serial
from seqtool.model.optim import Adam
from seqtool.model.recurrent import Recurrent, Stack


# ---------------------------------------------------------------- recurrent layers (cell kernels in seqtool/kernels)

RECURRENT_CASES = [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell,activation", RECURRENT_CASES)
def test_recurrent_gradients(cell, activation, bidirectional):
    layer = Recurrent(cell, 3, 4, bidirectional, activation, rng=np.random.default_rng(1))
    layer.astype(np.float64)
    if activation == "relu":                         # move off the identity init so the kinks are rare
        layer.params["w_h"] += np.random.default_rng(2).normal(scale=0.3, size=layer.params["w_h"].shape)
    make_ctx = ctx_factory()
    assert_grads(layer, random_rows(make_ctx().packing.n_rows, 3), make_ctx)


def test_deep_bidirectional_residual_stack_with_dropout_gradients():
    make_ctx = ctx_factory([5, 2, 1, 4, 5])
    stack = Stack("lstm", 3, 2, depth=3, bidirectional=True, dropout=0.3, residual=True,
                  rng=np.random.default_rng(4)).astype(np.float64)
    assert repr(stack) == "BiLSTM_2x3"
    assert [type(layer).__name__ for layer in stack.layers] == [
        "Recurrent", "Dropout", "Residual", "Dropout", "Residual"]
    assert_grads(stack, random_rows(make_ctx().packing.n_rows, 3), make_ctx, train=True)


def test_gru_stack_into_pool_gradients():
    make_ctx = ctx_factory()
    model = Serial(Stack("gru", 3, 3, depth=2, residual=True), Pool("last"), Dense(3, 2)).astype(np.float64)
    assert_grads(model, random_rows(make_ctx().packing.n_rows, 3), make_ctx)


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
    ctx = ctx_factory()()
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
    ctx = ctx_factory()()
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


def test_one_registry_of_cells_and_an_unknown_cell_is_refused_everywhere():
    from seqtool.cli import cli
    from seqtool.model.tasks import CELLS

    assert list(CELL_GATES) == ["rnn", "gru", "lstm"] and CELLS == ("rnn", "gru", "lstm", "none")
    train_cells = next(p for p in cli.commands["train"].params if p.name == "cell").type.choices
    assert list(train_cells) == list(CELLS)
    with pytest.raises(ValueError, match="unknown cell 'lru'"):
        Recurrent("lru", 3, 4)
    xp, w_h = np.zeros((1, 2, 12)), np.zeros((1, 4, 12))
    with pytest.raises(ValueError, match="unknown cell 'lru'"):             # the numpy path ran it as a GRU
        cell_forward("lru", xp, w_h, np.array([0, 2]))


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("S", [1, 2])
def test_products_in_pieces_equal_the_whole_product_bit_for_bit(monkeypatch, threads, S):
    from seqtool.model import recurrent

    monkeypatch.setattr(recurrent, "_kernel_threads", lambda: threads)
    rng = np.random.default_rng(threads)
    x = rng.normal(size=(S, 901, 130)).astype(np.float32)
    w = rng.normal(size=(S, 130, 512)).astype(np.float32)
    dxp = rng.normal(size=(S, 901, 512)).astype(np.float32)
    for a, b in ((x, w), (x.transpose(0, 2, 1), dxp), (dxp, w.transpose(0, 2, 1))):   # forward, dW_x, dx
        np.testing.assert_array_equal(recurrent.stream_matmul(a, b), np.matmul(a, b))


@pytest.mark.parametrize("S, n, threads", [(1, 10, 2), (2, 10, 2), (2, 10, 3), (1, 3, 8), (2, 901, 16)])
def testrow_pieces_cover_every_row_of_every_stream_once(S, n, threads):
    from seqtool.model.recurrent import row_pieces

    covered = np.zeros((S, n), int)
    for s, r0, r1 in row_pieces(S, n, threads):
        covered[s, r0:r1] += 1
    assert (covered == 1).all()
    assert len(row_pieces(S, n, threads)) == min(S * -(-threads // S), S * n)
