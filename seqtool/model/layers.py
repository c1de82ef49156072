"""Layers and combinators: every layer's ``forward`` returns ``(y, backward)``.

    model = Serial(Embedding(V, 100), Stack("lstm", 100, 128, depth=2, bidirectional=True),
                   Dense(256, n_tags))          # Stack: seqtool/recurrent.py
    ctx = Context(packing, rng)             # one per batch (per side of a Siamese pair)
    y, backward = model(ids, ctx, train=True)
    loss, dy = softmax_xent(y, tags)        # seqtool.kernels.loss
    backward(dy)                            # accumulates into every layer's grads

A layer holds float arrays ``params`` (name -> array) and matching ``grads``;
backward adds into grads (+=) and returns dx, so a layer used twice (the
Siamese encoder) sums both uses. Sequence layers work on packed rows (N, d)
(seqtool/data/packing.py); ``Pool`` turns them into one row per sequence, in input
order. Parameters are float32 by default; ``astype(np.float64)`` converts a
model for gradient checks (build the optimiser after converting).
"""
from functools import cached_property

import numpy as np

from seqtool.kernels import lazy
from seqtool.kernels import numpy_path as ref
from seqtool.data.packing import Packing

kd = lazy("seqtool.kernels.dense")
ks = lazy("seqtool.kernels.elementwise")


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


def xavier(rng, fan_in: int, fan_out: int, shape, dtype):
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
    """Inverted dropout: in training keep each entry with probability 1-p and scale by 1/(1-p).

    The mask comes from a counter-based generator keyed by one draw from the batch's generator
    (kernels/elementwise.py), so it is drawn in parallel and is the same on any number of threads.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p
        self.name = f"Dropout_{p:g}"

    def forward(self, x, ctx, train):
        if not train or self.p == 0.0:
            return x, lambda dy: dy
        key = np.uint64(ctx.rng.integers(0, 2 ** 63))
        rows = np.ascontiguousarray(x).reshape(len(x), -1)
        y, mask = ks.dropout_forward(rows, key, np.uint64(self.p * 2 ** 32), x.dtype.type(1.0 / (1.0 - self.p)))
        mask = mask.reshape(x.shape)
        return y.reshape(x.shape), lambda dy: dy * mask   # forward: y = x * mask


class Dense(Layer):
    """(N, d_in) -> (N, d_out): y = x W + b, numpy matmul (BLAS)."""

    def __init__(self, d_in: int, d_out: int, dtype=np.float32, rng: np.random.Generator | None = None):
        super().__init__()
        rng = rng or np.random.default_rng(0)
        self.add_param("W", xavier(rng, d_in, d_out, (d_in, d_out), dtype))
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
