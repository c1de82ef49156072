"""Layers and combinators: every layer's ``forward`` returns ``(y, backward)``.

    model = Serial(Embedding(V, 100), Stack("lstm", 100, 128, depth=2, bidirectional=True),
                   Dense(256, n_tags))
    ctx = Context(packing, rng)             # one per batch (per side of a Siamese pair)
    y, backward = model(ids, ctx, train=True)
    loss, dy = softmax_xent(y, tags)        # seqtool.kernels.loss
    backward(dy)                            # accumulates into every layer's grads

A layer holds float arrays ``params`` (name -> array) and matching ``grads``;
backward adds into grads (+=) and returns dx, so a layer used twice (the
Siamese encoder) sums both uses. Sequence layers work on packed rows (N, d)
(seqtool/packing.py); ``Pool`` turns them into one row per sequence, in input
order. Parameters are float32 by default; ``astype(np.float64)`` converts a
model for gradient checks (build the optimiser after converting).
"""
from functools import cached_property
import importlib

import numpy as np

from seqtool.kernels import lazy
from seqtool.kernels import reference as ref
from seqtool.packing import Packing

kd = lazy("seqtool.kernels.dense")


class Context:
    """Per-batch state the layers share: the Packing, the dropout RNG, and derived row maps."""

    def __init__(self, packing: Packing, rng: np.random.Generator | None = None):
        self.packing = packing
        self.rng = rng if rng is not None else np.random.default_rng()

    @cached_property
    def rev(self) -> np.ndarray:
        """(N,) involution reversing every sequence within its length."""
        return self.packing.reverse_index()

    @cached_property
    def last_rows(self) -> np.ndarray:
        """(B,) packed row of each sequence's last real token, input order."""
        return self.packing.last_rows()

    @cached_property
    def first_rows(self) -> np.ndarray:
        """(B,) packed row of each sequence's first token, input order."""
        return np.ascontiguousarray(self.packing.rows[:, 0])


class Layer:
    """The protocol: params/grads dicts, child layers, ``forward(x, ctx, train) -> (y, backward)``.

    The base class only keeps the books (naming, collecting, zeroing, dtype);
    each layer's numeric behaviour is its own ``forward``.
    """

    name = "Layer"

    def __init__(self, layers=()):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.layers: list[Layer] = list(layers)

    def forward(self, x, ctx: Context, train: bool):
        raise NotImplementedError

    def __call__(self, x, ctx: Context, train: bool = False):
        return self.forward(x, ctx, train)

    def __repr__(self) -> str:
        return self.name

    def add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = np.ascontiguousarray(value)
        self.grads[name] = np.zeros_like(self.params[name])

    def walk(self, prefix: str = ""):
        """Yield (qualified name, layer, local name) for every parameter, depth first, in a fixed order."""
        for name in self.params:
            yield prefix + name, self, name
        for i, child in enumerate(self.layers):
            yield from child.walk(f"{prefix}{i}.")

    def named_params(self) -> dict[str, np.ndarray]:
        return {q: layer.params[n] for q, layer, n in self.walk()}

    def param_list(self) -> list[np.ndarray]:
        return [layer.params[n] for _, layer, n in self.walk()]

    def grad_list(self) -> list[np.ndarray]:
        return [layer.grads[n] for _, layer, n in self.walk()]

    def grad_rows(self) -> list:
        """Aligned with param_list: None (dense gradient) or the unique rows a sparse gradient touched."""
        return [layer.touched_rows(n) for _, layer, n in self.walk()]

    def touched_rows(self, name: str):
        return None

    def zero_grads(self) -> None:
        for g in self.grads.values():
            g.fill(0)
        for child in self.layers:
            child.zero_grads()

    def astype(self, dtype) -> "Layer":
        """Convert every parameter (and zero its gradient) to dtype, in this layer and below."""
        for name in list(self.params):
            self.add_param(name, self.params[name].astype(dtype))
        for child in self.layers:
            child.astype(dtype)
        return self


def _xavier(rng, fan_in: int, fan_out: int, shape, dtype):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


# ---------------------------------------------------------------- token layers

class Embedding(Layer):
    """(N,) int ids -> (N, d) rows of the table; row ``pad_id`` stays zero and untrained."""

    def __init__(self, n_vocab: int, dim: int, pad_id: int | None = 0, dtype=np.float32,
                 rng: np.random.Generator | None = None):
        super().__init__()
        rng = rng or np.random.default_rng(0)
        table = rng.normal(0.0, dim ** -0.5, size=(n_vocab, dim)).astype(dtype)
        if pad_id is not None:
            table[pad_id] = 0.0
        self.add_param("E", table)
        self.pad_id = pad_id
        self.name = f"Embedding_{dim}"
        self._touched: list[np.ndarray] = []   # ids whose rows may hold gradient
        self._rows: np.ndarray | None = None    # their unique rows, once asked for

    def forward(self, ids, ctx, train):
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        V = self.params["E"].shape[0]
        if len(ids) and (ids.min() < 0 or ids.max() >= V):   # the kernel does not bounds-check
            raise ValueError(f"ids must lie in [0, {V}), got [{ids.min()}, {ids.max()}]")
        if ref.enabled():
            return self.params["E"][ids], ref.no_backward
        y = kd.embedding_forward(self.params["E"], ids)   # (N, d)

        def backward(dy):
            # forward: y[n] = E[ids[n]] -> dE[ids[n]] += dy[n], skipping <PAD>
            kd.embedding_backward(self.grads["E"], ids, np.ascontiguousarray(dy),
                                  -1 if self.pad_id is None else self.pad_id)
            self._touched.append(ids)
            self._rows = None
            return None                                    # ids are not differentiable
        return y, backward

    def touched_rows(self, name):
        if self._rows is None:
            rows = np.unique(np.concatenate(self._touched)) if self._touched else np.zeros(0, np.int64)
            self._rows = rows[rows != self.pad_id] if self.pad_id is not None else rows
            self._touched = [self._rows]
        return self._rows

    def zero_grads(self):
        # only the touched rows can be non-zero: a full memset of a large table is wasted time
        self.grads["E"][self.touched_rows("E")] = 0.0
        self._touched, self._rows = [], None

    def astype(self, dtype):
        self._touched, self._rows = [], None
        return super().astype(dtype)


class Dropout(Layer):
    """Inverted dropout: in training keep each entry with probability 1-p and scale by 1/(1-p)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p
        self.name = f"Dropout_{p:g}"

    def forward(self, x, ctx, train):
        if not train or self.p == 0.0:
            return x, lambda dy: dy
        keep = ctx.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        mask = (keep >= self.p).astype(x.dtype)
        mask *= 1.0 / (1.0 - self.p)
        return x * mask, lambda dy: dy * mask   # forward: y = x * mask


class Dense(Layer):
    """(N, d_in) -> (N, d_out): y = x W + b, numpy matmul (BLAS)."""

    def __init__(self, d_in: int, d_out: int, dtype=np.float32, rng: np.random.Generator | None = None):
        super().__init__()
        rng = rng or np.random.default_rng(0)
        self.add_param("W", _xavier(rng, d_in, d_out, (d_in, d_out), dtype))
        self.add_param("b", np.zeros(d_out, dtype=dtype))
        self.name = f"Dense_{d_out}"

    def forward(self, x, ctx, train):
        W, b = self.params["W"], self.params["b"]
        y = x @ W                           # 1: (N, d_out)
        y += b                              # 2

        def backward(dy):
            self.grads["b"] += dy.sum(axis=0)   # back 2
            self.grads["W"] += x.T @ dy         # back 1: dW = x^T dy
            return dy @ W.T                     # back 1: dx = dy W^T
        return y, backward


# ---------------------------------------------------------------- recurrent layers

CELLS = {"rnn": 1, "gru": 3, "lstm": 4}   # cell -> gates G


class Recurrent(Layer):
    """An RNN/GRU/LSTM layer over packed rows: (N, d_in) -> (N, S*H), S = 2 if bidirectional.

    The input projection of all rows is one batched product outside the time
    loop, xp[s] = x_s W_x[s] + b[s] with x_0 = x and x_1 = x[rev]; the cell
    kernel (seqtool/kernels/<cell>.py) runs the recurrence of both streams;
    the output is [h_fwd, h_bwd[rev]]. Parameters: w_x (S, d_in, G*H),
    w_h (S, H, G*H), b (S, G*H), gate order as in the kernel contract.
    """

    def __init__(self, cell: str, d_in: int, hidden: int, bidirectional: bool = False,
                 activation: str = "tanh", dtype=np.float32, rng: np.random.Generator | None = None):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(CELLS)}")
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', not {activation!r}")
        rng = rng or np.random.default_rng(0)
        G, H, S = CELLS[cell], hidden, 2 if bidirectional else 1
        self.cell, self.S, self.H, self.activation = cell, S, H, activation
        self.add_param("w_x", _xavier(rng, d_in, H, (S, d_in, G * H), dtype))
        if cell == "rnn" and activation == "relu":
            w_h = np.broadcast_to(np.eye(H), (S, H, H))             # IRNN
        else:
            w_h = np.concatenate([_orthogonal(rng, H, S) for _ in range(G)], axis=2)
        self.add_param("w_h", w_h.astype(dtype))
        b = np.zeros((S, G * H), dtype=dtype)
        if cell == "lstm":
            b[:, H:2 * H] = 1.0                                       # forget gate (i, f, g, o)
        self.add_param("b", b)
        kind = f"{cell.upper()}" if cell != "rnn" or activation == "tanh" else "ReLURNN"
        self.name = f"{'Bi' if S == 2 else ''}{kind}_{H}"
        self._options = (activation == "relu",) if cell == "rnn" else ()

    def forward(self, x, ctx, train):
        w_x, w_h, b = self.params["w_x"], self.params["w_h"], self.params["b"]
        S, H = self.S, self.H
        offsets = ctx.packing.offsets
        x = np.ascontiguousarray(x)
        if S == 1:
            xs = x[None]                                      # (1, N, d_in), a view
        else:
            rev = ctx.rev
            xs = np.empty((2,) + x.shape, dtype=x.dtype)      # (2, N, d_in)
            xs[0] = x
            np.take(x, rev, axis=0, out=xs[1])                # 1: stream 1 reads the reversed rows
        if ref.enabled():
            xp = np.matmul(xs, w_x) + b[:, None, :]
            h = ref.cell_forward(self.cell, xp, w_h, offsets, *self._options)
            return (h[0] if S == 1 else np.concatenate([h[0], h[1][rev]], axis=1)), ref.no_backward
        forward_kernel, backward_kernel = _cell_kernels(self.cell)
        xp = stream_matmul(xs, w_x)                           # 2: (S, N, G*H) one product per stream
        xp += b[:, None, :]                                   # 3
        h, cache = forward_kernel(xp, w_h, offsets, *self._options)   # 4: h (S, N, H)
        y = self._join(h, ctx)                                # 5

        def backward(dy):
            if S == 1:
                dh = np.ascontiguousarray(dy)[None]
            else:
                dh = np.empty((2, dy.shape[0], H), dtype=dy.dtype)   # back 5
                dh[0] = dy[:, :H]
                dh[1] = dy[rev, H:]
            dxp, dw_h = backward_kernel(dh, xp, w_h, offsets, h, cache, *self._options)  # back 4
            self.grads["w_h"] += dw_h
            self.grads["b"] += dxp.sum(axis=1)                       # back 3
            self.grads["w_x"] += stream_matmul(xs.transpose(0, 2, 1), dxp)  # back 2: dW_x = x_s^T dxp
            dxs = stream_matmul(dxp, w_x.transpose(0, 2, 1))             # back 2: dx_s = dxp W_x^T
            if S == 1:
                return dxs[0]
            dx = dxs[0]
            dx += dxs[1][rev]                                        # back 1 (rev is an involution)
            return dx
        return y, backward


    def from_projection(self, xp: np.ndarray, ctx: Context) -> np.ndarray:
        """Inference from a ready input product xp (S, N, G*H), bias included (folding.py): y (N, S*H)."""
        forward_kernel, _ = _cell_kernels(self.cell)
        h, _ = forward_kernel(xp, self.params["w_h"], ctx.packing.offsets, *self._options)
        return self._join(h, ctx)

    def _join(self, h: np.ndarray, ctx: Context) -> np.ndarray:
        """5: the layer's output from the streams' states h (S, N, H): [h_fwd, h_bwd[rev]]."""
        if self.S == 1:
            return h[0]
        H = self.H
        y = np.empty((h.shape[1], 2 * H), dtype=h.dtype)
        y[:, :H] = h[0]
        y[:, H:] = h[1][ctx.rev]
        return y


# BLAS runs one thread (cli.py sets OPENBLAS_NUM_THREADS=1: numba's threads own the cores), so
# the two directions' products of a bidirectional layer, each large and independent, run on two
# Python threads (numpy releases the GIL in matmul) when the kernels may use two threads.
PARALLEL_MATMUL_FLOPS = 20_000_000
_matmul_pool = None


def stream_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul of (S, n, k) and (S, k, m) stacks; with S == 2, the two products side by side."""
    global _matmul_pool
    S, n, k = a.shape
    if S != 2 or 2 * n * k * b.shape[2] < PARALLEL_MATMUL_FLOPS or _kernel_threads() < 2:
        return np.matmul(a, b)
    if _matmul_pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _matmul_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqtool-matmul")
    out = np.empty((S, n, b.shape[2]), dtype=np.result_type(a, b))
    other = _matmul_pool.submit(np.matmul, a[1], b[1], out=out[1])
    np.matmul(a[0], b[0], out=out[0])
    other.result()
    return out


def _kernel_threads() -> int:
    import numba

    return numba.get_num_threads()


def _orthogonal(rng, H: int, S: int) -> np.ndarray:
    """(S, H, H): an orthogonal matrix per stream (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(S, H, H)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def _cell_kernels(cell: str):
    mod = importlib.import_module(f"seqtool.kernels.{cell}")
    return getattr(mod, f"{cell}_forward"), getattr(mod, f"{cell}_backward")


class Residual(Layer):
    """y = x + f(x) for a layer f that keeps the width."""

    def __init__(self, layer: Layer):
        super().__init__([layer])
        self.name = f"Residual({layer!r})"

    def forward(self, x, ctx, train):
        fx, f_backward = self.layers[0](x, ctx, train)
        if fx.shape != x.shape:
            raise ValueError(f"residual needs equal widths, got {x.shape} -> {fx.shape}")

        def backward(dy):
            return dy + f_backward(dy)     # forward: y = x + f(x)
        return x + fx, backward


def Stack(cell: str, d_in: int, hidden: int, depth: int = 1, bidirectional: bool = False,
          dropout: float = 0.0, residual: bool = False, activation: str = "tanh",
          dtype=np.float32, rng: np.random.Generator | None = None) -> "Serial":
    """A deep RNN: ``depth`` Recurrent layers, Dropout(dropout) between them, and
    (if residual) a skip connection around every layer whose input width equals
    its output width (all but the first, unless d_in == S*hidden)."""
    rng = rng or np.random.default_rng(0)
    width = hidden * (2 if bidirectional else 1)
    layers: list[Layer] = []
    for i in range(depth):
        n_in = d_in if i == 0 else width
        if i > 0 and dropout > 0.0:
            layers.append(Dropout(dropout))
        rec = Recurrent(cell, n_in, hidden, bidirectional, activation, dtype, rng)
        layers.append(Residual(rec) if residual and n_in == width else rec)
    return Serial(*layers, name=f"{rec!r}x{depth}")


# ---------------------------------------------------------------- sequence -> vector

class Pool(Layer):
    """Packed rows (N, d) -> (B, d), one row per sequence in input order, over real tokens only.

    kind "mean" (masked mean), "max", or "last" (the last real token; with
    bidirectional=True the second half of the features, the backward stream,
    is taken at the first token, where that stream ends).
    """

    def __init__(self, kind: str = "mean", bidirectional: bool = False):
        super().__init__()
        if kind not in ("mean", "max", "last"):
            raise ValueError(f"pooling must be 'mean', 'max' or 'last', not {kind!r}")
        self.kind, self.bidirectional = kind, bidirectional
        self.name = f"Pool_{kind}"

    def forward(self, x, ctx, train):
        p, N = ctx.packing, x.shape[0]
        x = np.ascontiguousarray(x)
        k = ref if ref.enabled() else kd
        if self.kind == "mean":
            y = k.mean_pool_forward(x, p.rows, p.lengths)
            return y, lambda dy: kd.mean_pool_backward(np.ascontiguousarray(dy), p.rows, p.lengths, N)
        if self.kind == "max":
            y, arg = k.max_pool_forward(x, p.rows, p.lengths)
            return y, lambda dy: kd.max_pool_backward(np.ascontiguousarray(dy), arg, N)
        split = x.shape[1] // 2 if self.bidirectional else x.shape[1]
        last, first = ctx.last_rows, ctx.first_rows
        y = k.last_pool_forward(x, last, first, split)
        return y, lambda dy: kd.last_pool_backward(np.ascontiguousarray(dy), last, first, split, N)


class L2Normalize(Layer):
    """Rows scaled to unit L2 norm: y = x / max(|x|, eps)."""

    name = "L2Normalize"

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x, ctx, train):
        raw = np.sqrt((x * x).sum(axis=1, keepdims=True))     # 1: |x| (B, 1)
        norm = np.maximum(raw, self.eps)                     # 2: clamped
        y = x / norm                                         # 3

        def backward(dy):
            # back 3+1: dx = (dy - y (y . dy)) / |x|; a clamped row is just x / eps: dx = dy / eps
            proj = np.where(raw >= self.eps, (y * dy).sum(axis=1, keepdims=True), 0.0)
            return (dy - y * proj) / norm
        return y, backward


# ---------------------------------------------------------------- combinator

class Serial(Layer):
    """Layers in sequence; backward runs the saved callbacks in reverse."""

    def __init__(self, *layers: Layer, name: str | None = None):
        super().__init__(layers)
        self.name = name or "Serial(" + " > ".join(repr(layer) for layer in layers) + ")"

    def forward(self, x, ctx, train):
        callbacks = []
        for layer in self.layers:
            x, backward = layer(x, ctx, train)
            callbacks.append(backward)

        def backward(dy):
            for callback in reversed(callbacks):
                dy = callback(dy)
            return dy
        return x, backward
