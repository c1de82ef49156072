"""Slow numpy references of the three cells over PADDED batches with a mask.

Batch-major, one stream: xp (B, T, G*H) with the input projection already
added, w_h (H, G*H), lengths (B,). The state of a finished sequence is frozen
(masked update) and its outputs past the end are zero, as a padded framework
run with masking would give. Written from the formulas, independently of the
kernels' packed layout, loops and caches.
"""
import numpy as np
import pytest

RELU = 1  # seqtool.kernels.rnn activation codes: 0 tanh, 1 relu


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _run(step, xp, w_h, lengths, n_states):
    """Scan step(xp_t, states, w_h) -> (h, states) over time with a length mask."""
    B, T, _ = xp.shape
    H = w_h.shape[0]
    states = [np.zeros((B, H), xp.dtype) for _ in range(n_states)]
    out = np.zeros((B, T, H), xp.dtype)
    for t in range(T):
        live = (t < np.asarray(lengths))[:, None]
        h, new = step(xp[:, t], states, w_h)
        states = [np.where(live, n, o) for n, o in zip(new, states)]
        out[:, t] = np.where(live, h, 0)
    return out


def rnn_reference(xp, w_h, lengths, activation=0):
    """h_t = g(xp_t + h_{t-1} W_h), g = tanh or relu."""
    def step(x, states, w):
        a = x + states[0] @ w
        h = np.maximum(a, 0) if activation == RELU else np.tanh(a)
        return h, [h]
    return _run(step, xp, w_h, lengths, 1)


def gru_reference(xp, w_h, lengths):
    """The seed's GRU: r, u = sigmoid(xp + h W_ru); c = tanh(xp_c + (r h) W_c); h = (1-u) h + u c."""
    H = w_h.shape[0]

    def step(x, states, w):
        hp = states[0]
        r = _sigmoid(x[:, :H] + hp @ w[:, :H])
        u = _sigmoid(x[:, H:2 * H] + hp @ w[:, H:2 * H])
        c = np.tanh(x[:, 2 * H:] + (r * hp) @ w[:, 2 * H:])
        h = (1 - u) * hp + u * c
        return h, [h]
    return _run(step, xp, w_h, lengths, 1)


def lstm_reference(xp, w_h, lengths):
    """Gates (i, f, g, o) as PyTorch: c = f c + i g; h = o tanh(c)."""
    H = w_h.shape[0]

    def step(x, states, w):
        hp, cp = states
        a = x + hp @ w
        i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 3 * H:])
        g = np.tanh(a[:, 2 * H:3 * H])
        c = f * cp + i * g
        h = o * np.tanh(c)
        return h, [h, c]
    return _run(step, xp, w_h, lengths, 2)


# ---------------------------------------------------------------- checking harness shared by test_<cell>.py
class CellChecks:
    """The checks every cell passes (STYLE.md rule 8's three oracles, float32, long runs).

    test_<cell>.py subclasses it as Test<Cell>, setting G, forward and backward
    (as staticmethods), reference(xp, w_h, lengths, options) and, for cells with
    options, an ``options`` fixture parametrised over them.
    """
    G = 0
    RAGGED = (5, 3, 3, 1, 4)
    MIXED = (9, 3, 12, 1, 6, 12)

    @pytest.fixture
    def options(self):
        return ()

    def reference(self, xp, w_h, lengths, options):
        raise NotImplementedError

    def long_run_weights(self, w_h, options):
        """Recurrent weights for the long-sequence test: large ones by default."""
        return w_h

    @pytest.mark.parametrize("S", [1, 2])
    def test_gradients_match_central_differences(self, S, options):
        p, xp, w_h = random_case(self.G, self.RAGGED, H=3, S=S)
        err_x, err_w = check_fd(self.forward, self.backward, xp, w_h, p.offsets, options)
        assert err_x < 1e-6 and err_w < 1e-6

    @pytest.mark.parametrize("S", [1, 2])  # S = 1: the batch is split into rank chunks (kernels/_math.py)
    def test_each_sequence_alone_equals_the_packed_batch(self, S, options):
        p, xp, w_h = random_case(self.G, [7, 2, 9, 1, 4, 4, 6], H=5, S=S)
        assert max(check_sequential(self.forward, self.backward, xp, w_h, p, options)) < 1e-12

    @pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
    def test_matches_padded_numpy_reference(self, dtype, tol, options):
        p, xp, w_h = random_case(self.G, self.MIXED, H=17, dtype=dtype)
        reference = lambda x, w, lengths: self.reference(x, w, lengths, options)
        assert check_reference(self.forward, reference, xp, w_h, p, options) < tol

    def test_float32_gradients_close_to_float64(self, options):
        p, xp, w_h = random_case(self.G, self.MIXED, H=17)
        assert max(check_float32(self.forward, self.backward, xp, w_h, p.offsets, options)) < 1e-4

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_long_sequences_stay_finite(self, dtype, options):
        p, xp, w_h = random_case(self.G, [200, 150, 1], H=8, dtype=dtype, scale=20.0)
        w_h = self.long_run_weights(w_h, options)
        assert check_finite(self.forward, self.backward, 5 * xp, w_h, p.offsets, options)


def random_case(G, lengths, H, S=2, dtype=np.float64, scale=1.0, seed=0):
    """(packing, xp (S, N, G*H), w_h (S, H, G*H)) with w_h ~ N(0, scale^2 / H)."""
    from seqtool.data.packing import make_packing

    p = make_packing(lengths)
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((S, p.n_rows, G * H)).astype(dtype)
    w_h = (rng.standard_normal((S, H, G * H)) * scale / np.sqrt(H)).astype(dtype)
    return p, xp, w_h


def rel_err(got, want):
    """max |got - want| / max |want| (norm-wise relative error)."""
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def central_difference(f, x, eps=1e-6):
    """d f / d x by central differences, one coordinate at a time (x is restored)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        keep = x[idx]
        x[idx] = keep + eps
        up = f()
        x[idx] = keep - eps
        g[idx] = (up - f()) / (2 * eps)
        x[idx] = keep
    return g


def check_fd(forward, backward, xp, w_h, offsets, options=(), seed=1):
    """Relative errors (dxp, dw_h) of the kernel's backward against central differences of
    the random linear functional L = sum(h * c)."""
    h, cache = forward(xp, w_h, offsets, *options)
    c = np.random.default_rng(seed).standard_normal(h.shape)
    dxp, dw_h = backward(c, xp, w_h, offsets, h, cache, *options)

    def loss():
        return float((forward(xp, w_h, offsets, *options)[0] * c).sum())
    return rel_err(dxp, central_difference(loss, xp)), rel_err(dw_h, central_difference(loss, w_h))


def check_sequential(forward, backward, xp, w_h, p, options=(), seed=1):
    """Max abs differences (h, dxp, dw_h) between the packed batch and each sequence run alone."""
    h, cache = forward(xp, w_h, p.offsets, *options)
    dh = np.random.default_rng(seed).standard_normal(h.shape).astype(h.dtype)
    dxp, dw_h = backward(dh, xp, w_h, p.offsets, h, cache, *options)
    dw_sum = np.zeros_like(dw_h)
    err = [0.0, 0.0]
    for b, L in enumerate(p.lengths):
        rows = p.rows[b, :L]  # one sequence: step t is row t
        one = np.arange(L + 1, dtype=np.int64)
        xb = np.ascontiguousarray(xp[:, rows])
        hb, cb = forward(xb, w_h, one, *options)
        dxb, dwb = backward(np.ascontiguousarray(dh[:, rows]), xb, w_h, one, hb, cb, *options)
        err = [max(err[0], np.abs(hb - h[:, rows]).max()), max(err[1], np.abs(dxb - dxp[:, rows]).max())]
        dw_sum += dwb
    return err[0], err[1], float(np.abs(dw_sum - dw_h).max())


def check_reference(forward, reference, xp, w_h, p, options=()):
    """Max abs difference between the kernel (packed) and the padded reference, over real positions."""
    from seqtool.data.packing import pack, unpack

    h, _ = forward(xp, w_h, p.offsets, *options)
    xp64, w64 = xp.astype(np.float64), w_h.astype(np.float64)
    want = np.stack([pack(reference(unpack(xp64[s], p), w64[s], p.lengths), p) for s in range(len(xp))])
    return float(np.abs(h - want).max())


def check_float32(forward, backward, xp, w_h, offsets, options=(), seed=1):
    """Relative errors (h, dxp, dw_h) of the float32 kernels against the float64 ones."""
    out = []
    for dtype in (np.float64, np.float32):
        x, w = xp.astype(dtype), w_h.astype(dtype)
        h, cache = forward(x, w, offsets, *options)
        dh = np.random.default_rng(seed).standard_normal(h.shape).astype(dtype)
        out.append((h,) + backward(dh, x, w, offsets, h, cache, *options))
    return tuple(rel_err(a32.astype(np.float64), a64) for a64, a32 in zip(*out))


def check_finite(forward, backward, xp, w_h, offsets, options=()):
    """True when h, dxp and dw_h are all finite."""
    h, cache = forward(xp, w_h, offsets, *options)
    dxp, dw_h = backward(np.ones_like(h), xp, w_h, offsets, h, cache, *options)
    return all(bool(np.isfinite(a).all()) for a in (h, dxp, dw_h))


# ---------------------------------------------------------------- PyTorch side of the parity tests
def parity_errors(torch, torch_run, params, forward, backward, lengths, D, options=(), seed=0):
    """Max abs differences between our kernel and a PyTorch float64 computation of the same layer.

    torch_run(x) -> y (B, T, S*H) padded, zero past each length. params(grad) -> (w_x (S, D, G*H),
    b (S, G*H), w_h (S, H, G*H)) as numpy arrays in our layout: the weights (grad False) or, once
    backward has run, their gradients (grad True). Returns the errors of y and of the gradients of
    sum(y * c) w.r.t. x, w_x, b, w_h.
    """
    from seqtool.data.packing import make_packing

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), D, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch_run(x)
    c = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    (y * c).sum().backward()
    weights = [np.ascontiguousarray(a) for a in params(False)]
    got = ours_from_padded(forward, backward, x.detach().numpy(), *weights, make_packing(lengths), c.numpy(), options)
    want = [y.detach().numpy(), x.grad.numpy(), *params(True)]
    return {k: float(np.abs(g - w).max()) for k, g, w in zip(("y", "dx", "dw_x", "db", "dw_h"), got, want)}


def nn_module_parity(torch, module, forward, backward, lengths, options=()):
    """parity_errors for torch.nn.LSTM / torch.nn.RNN (float64, packed input): W_ih and W_hh
    transposed, b_ih + b_hh as our single bias (whose gradient is that of either)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    sfx = ["", "_reverse"][:2 if module.bidirectional else 1]

    def run(x):
        out, _ = module(pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True)[0]

    def params(grad):
        def stack(name):  # (S, ...) numpy, each direction's tensor or its gradient
            return np.stack([(t.grad if grad else t.detach()).numpy()
                             for t in (getattr(module, f"{name}_l0{s}") for s in sfx)])
        b = stack("bias_ih") + (0 if grad else stack("bias_hh"))
        return stack("weight_ih").transpose(0, 2, 1), b, stack("weight_hh").transpose(0, 2, 1)
    return parity_errors(torch, run, params, forward, backward, lengths, module.input_size, options)


def ours_from_padded(forward, backward, x, w_x, b, w_h, p, c_pad, options=()):
    """Run our kernel as a (bi)directional layer would, on padded x (B, T, D) with the layer weights
    w_x (S, D, G*H), b (S, G*H), w_h (S, H, G*H): returns y (B, T, S*H) padded, and the grads
    dx (B, T, D), dw_x, db, dw_h of sum(y * c_pad) over real positions."""
    from seqtool.data.packing import pack, unpack

    S, H = w_h.shape[0], w_h.shape[1]
    rev = p.reverse_index()
    xs = pack(x, p)
    x_s = np.stack([xs, xs[rev]][:S])  # stream 1 reads the reversed rows
    xp = np.matmul(x_s, w_x) + b[:, None, :]
    h, cache = forward(xp, w_h, p.offsets, *options)
    cp = pack(c_pad, p)
    dh = np.stack([cp[:, :H], cp[rev, H:]][:S])
    dxp, dw_h = backward(np.ascontiguousarray(dh), xp, w_h, p.offsets, h, cache, *options)
    dx_s = np.matmul(dxp, w_x.transpose(0, 2, 1))
    dx = dx_s[0] + (dx_s[1][rev] if S == 2 else 0)
    y = np.concatenate([h[0]] + ([h[1][rev]] if S == 2 else []), axis=1)
    return (unpack(y, p), unpack(dx, p), np.matmul(x_s.transpose(0, 2, 1), dxp), dxp.sum(axis=1), dw_h)
