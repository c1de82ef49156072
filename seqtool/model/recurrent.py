"""Recurrent layers: a (bi)RNN/GRU/LSTM layer over packed rows, skip connections, stacks.

    Stack("lstm", 100, 128, depth=2, bidirectional=True)   # Recurrent > Dropout > Recurrent
    y, backward = layer(x, ctx, train)                        # (N, d_in) -> (N, S*H)

The layer does the large input products (numpy matmul, both directions side
by side) and hands the recurrence to the cell kernels (seqtool/kernels/<cell>.py,
contract in seqtool/kernels/__init__.py). ``from_projection`` runs the
recurrence from a ready input product (seqtool/model/token_cache.py, inference).
"""
import importlib

import numpy as np

from seqtool.kernels import CELL_GATES, check_cell, lazy
from seqtool.kernels import numpy_path as ref
from seqtool.model.layers import Context, Dropout, Layer, Serial, xavier

ks = lazy("seqtool.kernels.elementwise")


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
        check_cell(cell)
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', not {activation!r}")
        rng = rng or np.random.default_rng(0)
        G, H, S = CELL_GATES[cell], hidden, 2 if bidirectional else 1
        self.cell, self.S, self.H, self.activation = cell, S, H, activation
        self.add_param("w_x", xavier(rng, d_in, H, (S, d_in, G * H), dtype))
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
        S = self.S
        offsets = ctx.packing.offsets
        x = np.ascontiguousarray(x)
        if ref.enabled():
            xs = x[None] if S == 1 else np.stack([x, x[ctx.rev]])
            xp = np.matmul(xs, w_x) + b[:, None, :]
            h = ref.cell_forward(self.cell, xp, w_h, offsets, *self._options)
            return self._join(h, ctx), ref.no_backward
        forward_kernel, backward_kernel = _cell_kernels(self.cell)
        xs = x[None] if S == 1 else ks.split_input(x, ctx.rev)    # 1: (S, N, d_in); stream 1 reads x[rev]
        xp = stream_matmul(xs, w_x)                           # 2: (S, N, G*H) one product per stream
        ks.add_bias(xp, b)                                    # 3
        h, cache = forward_kernel(xp, w_h, offsets, *self._options)   # 4: h (S, N, H)
        y = self._join(h, ctx)                                # 5

        def backward(dy):
            dy = np.ascontiguousarray(dy)
            dh = dy[None] if S == 1 else ks.split_output_grad(dy, ctx.rev)   # back 5
            dxp, dw_h = backward_kernel(dh, xp, w_h, offsets, h, cache, *self._options)  # back 4
            self.grads["w_h"] += dw_h
            self.grads["b"] += ks.column_sums(dxp)                           # back 3
            self.grads["w_x"] += stream_matmul(xs.transpose(0, 2, 1), dxp)  # back 2: dW_x = x_s^T dxp
            dxs = stream_matmul(dxp, w_x.transpose(0, 2, 1))             # back 2: dx_s = dxp W_x^T
            return dxs[0] if S == 1 else ks.join_input_grad(dxs, ctx.rev)   # back 1
        return y, backward

    def from_projection(self, xp: np.ndarray, ctx: Context) -> np.ndarray:
        """Inference from a ready input product xp (S, N, G*H), bias included (a token cache's rows, model/token_cache.py): y (N, S*H)."""
        forward_kernel, _ = _cell_kernels(self.cell)
        h, _ = forward_kernel(xp, self.params["w_h"], ctx.packing.offsets, *self._options)
        return self._join(h, ctx)

    def _join(self, h: np.ndarray, ctx: Context) -> np.ndarray:
        """5: the layer's output from the streams' states h (S, N, H): [h_fwd, h_bwd[rev]]."""
        if self.S == 1:
            return h[0]
        if ref.enabled():
            return np.concatenate([h[0], h[1][ctx.rev]], axis=1)
        return ks.join_output(h, ctx.rev)


# BLAS runs one thread (cli.py sets OPENBLAS_NUM_THREADS=1: numba's threads own the cores), so a
# recurrent layer's large products (the input product and the two of its backward) are split into
# pieces, one per kernel thread, run side by side on Python threads (numpy releases the GIL in
# matmul): a piece is a block of rows of one stream's product. A row block's rows come out of BLAS
# with the same bits as in the whole product (the sum over k is not split; checked for the shapes
# we train at), so the result does not depend on the thread count. Pieces below MIN_PIECE_FLOPS
# cost more to hand over than they save.
PARALLEL_MATMUL_FLOPS = 20_000_000
MIN_PIECE_FLOPS = 5_000_000
_matmul_pool = None   # (threads, ThreadPoolExecutor)


def stream_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul of (S, n, k) and (S, k, m) stacks, in pieces (stream, block of rows) on the kernel threads."""
    S, n, k = a.shape
    flops = 2 * S * n * k * b.shape[2]
    threads = min(_kernel_threads(), flops // MIN_PIECE_FLOPS)
    if flops < PARALLEL_MATMUL_FLOPS or threads < 2:
        return np.matmul(a, b)
    out = np.empty((S, n, b.shape[2]), dtype=np.result_type(a, b))
    pieces = row_pieces(S, n, threads)
    pool = _pool(threads - 1)
    others = [pool.submit(np.matmul, a[s, r0:r1], b[s], out=out[s, r0:r1]) for s, r0, r1 in pieces[1:]]
    s, r0, r1 = pieces[0]
    np.matmul(a[s, r0:r1], b[s], out=out[s, r0:r1])
    for other in others:
        other.result()
    return out


def row_pieces(S: int, n: int, threads: int) -> list[tuple[int, int, int]]:
    """(stream, first row, end row) pieces: each stream cut into ceil(threads / S) blocks of rows, S*that in all
    (one stream per thread on two threads and a bidirectional layer; halves of the rows for a one-way layer)."""
    blocks = -(-threads // S)
    bounds = [n * i // blocks for i in range(blocks + 1)]
    return [(s, bounds[i], bounds[i + 1]) for s in range(S) for i in range(blocks) if bounds[i + 1] > bounds[i]]


def _pool(workers: int):
    """The pool of product threads, with at least ``workers`` threads (grown when --threads grows)."""
    global _matmul_pool
    if _matmul_pool is None or _matmul_pool[0] < workers:
        from concurrent.futures import ThreadPoolExecutor

        _matmul_pool = (workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seqtool-matmul"))
    return _matmul_pool[1]


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
