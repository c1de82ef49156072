"""Numba kernels: the numeric core, apart from orchestration (layers.py, recurrent.py, train.py).

Contract shared by the recurrent cells (rnn.py, gru.py, lstm.py)
------------------------------------------------------------------
Sequences arrive *packed* (see seqtool/data/packing.py): N real tokens, time-major,
step t in rows offsets[t]:offsets[t+1], the running sequences a prefix of the
ranks, so no kernel ever computes on padding. Initial states are zero.

S independent *streams* share one packing and run in one call: S = 1 for a
unidirectional layer, S = 2 for a bidirectional one (stream 1 is fed the
reversed rows x[rev], so each kernel only ever runs forward in time). Streams
are the natural unit of parallelism for two threads.

G = gates per cell: rnn 1, gru 3, lstm 4; H = hidden size per stream.
The input projection for all steps, xp = x @ W_x + b, is one large matrix
product done by the caller outside the time loop; the kernels own only the
recurrence:

    <cell>_forward(xp (S, N, G*H), w_h (S, H, G*H), offsets (T+1,) int64[, options])
        -> h (S, N, H), cache (S, N, K*H)
    <cell>_backward(dh (S, N, H), xp, w_h, offsets, h, cache[, options])
        -> dxp (S, N, G*H), dw_h (S, H, G*H)

Options: rnn takes one, ``relu`` (bool, positional): g = ReLU instead of
tanh (the IRNN remedy); gru and lstm take none. Caches (K): rnn 0 (backward
needs only h), gru 3 [r | u | c] (c the candidate), lstm 5 [i | f | g | o | c]
(c the cell state): activated gates, per row.
dxp is the gradient of the loss w.r.t. xp, so the caller finishes with
dW_x = x^T dxp, db = sum(dxp), dx = dxp W_x^T (again large products).
Gate order inside the G*H columns follows PyTorch where PyTorch has the cell:
LSTM (i, f, g, o); GRU (r, u, candidate) in the variant whose candidate
uses the reset-gated state (PyTorch's applies r after the product): tanh(W_h[r*h, x] + b)); RNN: one block.
float32 for training and inference, float64 for gradient checks: every kernel
is compiled for both (the dtype follows the arrays).
"""
import importlib.util
import sys

# THE registry of recurrent cells: name -> gates G (the module seqtool.kernels.<name> implements it).
# The layers, the numpy inference path, the task options and the CLI's choices all read it.
CELL_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def check_cell(cell: str) -> str:
    """``cell`` if it is a registered cell; otherwise a ValueError naming the known ones."""
    if cell not in CELL_GATES:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELL_GATES)}")
    return cell


def lazy(name: str):
    """The module ``name``, imported on first attribute access (importing numba costs ~0.4 s, and
    a small ``tag`` never needs it: see kernels/numpy_path.py)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_lazy() -> None:
    """Finish loading the kernel modules that ``lazy`` deferred. Before Python 3.12 a lazy module is
    not thread-safe while it loads (a second thread can see it half-built), so code about to run
    kernels on several threads calls this first, on one thread."""
    for name in [name for name in sys.modules if name.startswith(__name__ + ".")]:
        _ = sys.modules[name].__name__           # on a lazy module, any attribute runs the deferred import
