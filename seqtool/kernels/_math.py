"""Shared @njit helpers of the recurrent cells (rnn.py, gru.py, lstm.py).

Activations: float64 calls libm (exact: gradient checks, references, parity
tests); float32 uses a rational form of tanh that LLVM vectorises, because
libm's tanhf/expf are scalar calls costing 15-50 ns each, more than the
recurrent product itself at H=128. Derivatives take the activation's OUTPUT y,
which is what the caches hold.

Compile options (``JIT``): fastmath reassoc/contract lets LLVM vectorise the
reductions and fuse multiply-adds (no nnan/ninf: inf and NaN propagate as IEEE
says); error_model "numpy" drops the ZeroDivisionError branch that numba puts
on every float division and that blocks vectorisation.
"""
import numba
import numpy as np
from numba import njit, types
from numba.extending import overload, register_jitable

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
_INLINE = {"fastmath": FASTMATH, "error_model": "numpy"}

# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 9 (beyond, float32 tanh rounds to +-1).
# Coefficients fitted for this project by Lawson-weighted least squares on the
# relative error: 2e-8 in exact arithmetic, 3.4e-7 absolute (3 ulp of 1.0) when
# evaluated in float32 (checked on a 2M-point grid over [-12, 12]).
_P1, _P2, _P3, _P4 = 0.1338395649, 0.00349896785, 2.066079982e-05, 1.34191864e-08
_Q1, _Q2, _Q3, _Q4 = 0.4671727797, 0.02589009894, 0.0003290992272, 7.804467936e-07


@register_jitable(**_INLINE)
def _tanh32(x):
    one = np.float32(1.0)
    v = min(max(x, np.float32(-9.0)), np.float32(9.0))
    z = v * v
    p = one + z * (np.float32(_P1) + z * (np.float32(_P2) + z * (np.float32(_P3) + z * np.float32(_P4))))
    q = one + z * (np.float32(_Q1) + z * (np.float32(_Q2) + z * (np.float32(_Q3) + z * np.float32(_Q4))))
    return min(max(v * p / q, -one), one)


# The four public activations are Python stubs (usable from tests) whose
# jitted versions are chosen per dtype by the overloads below.
def tanh(x):
    """tanh of a scalar: exact in float64, rational (abs err < 4e-7) in float32."""
    return np.tanh(x)


def sigmoid(x):
    """Logistic sigmoid of a scalar; float32 via tanh: (1 + tanh(x/2)) / 2."""
    return 1.0 / (1.0 + np.exp(-x))


def dtanh(y):
    """d tanh / dx where tanh(x) = y: 1 - y^2, in y's precision."""
    return 1.0 - y * y


def dsigmoid(y):
    """d sigmoid / dx where sigmoid(x) = y: y (1 - y)."""
    return y - y * y


@overload(tanh, jit_options=_INLINE)
def _tanh_jit(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: np.tanh(x)


@overload(sigmoid, jit_options=_INLINE)
def _sigmoid_jit(x):
    if x == types.float32:
        half = np.float32(0.5)
        return lambda x: half + half * _tanh32(half * x)
    return lambda x: 1.0 / (1.0 + np.exp(-x))


@overload(dtanh, jit_options=_INLINE)
def _dtanh_jit(y):
    one = np.float32(1.0) if y == types.float32 else 1.0
    return lambda y: one - y * y


@overload(dsigmoid, jit_options=_INLINE)
def _dsigmoid_jit(y):
    return lambda y: y - y * y


# ---------------------------------------------------------------- products
@njit(**JIT)
def addmm_nt(out, c, a, a0, bt):
    """out = c + a[:, a0:a0+k] @ bt^T, the per-step recurrent product (c may be out: accumulate).

    out, c (n, m); a (n, >= a0 + k); bt (m, k). a and bt are C-contiguous, so
    the innermost loop is a dot product over k on unit-stride rows, which LLVM
    vectorises (a column slice of a would be an 'A'-layout array and run
    scalar: hence a0). Each 2x4 block of out keeps its 8 sums in registers for
    the whole k loop: 6 loads per 8 multiply-adds, against 2 loads + 1 store
    per multiply-add for ``out[i, :] += a[i, p] * w[p, :]``
    (benchmarks/gemm_strategies.py).
    """
    n, m, k = out.shape[0], bt.shape[0], bt.shape[1]
    zero = a.dtype.type(0)  # (not a[0] * b[0] and p from 1: that leaves a scalar tail of k - 1 = 7 mod 8)
    for j in range(0, m - 3, 4):  # 4 output columns = 4 rows of bt
        b0, b1, b2, b3 = bt[j], bt[j + 1], bt[j + 2], bt[j + 3]
        for i in range(0, n - 1, 2):  # 2 output rows
            x0, x1 = a[i, a0:a0 + k], a[i + 1, a0:a0 + k]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for p in range(k):
                y0, y1, y2, y3 = b0[p], b1[p], b2[p], b3[p]
                s00 += x0[p] * y0
                s01 += x0[p] * y1
                s02 += x0[p] * y2
                s03 += x0[p] * y3
                s10 += x1[p] * y0
                s11 += x1[p] * y1
                s12 += x1[p] * y2
                s13 += x1[p] * y3
            out[i, j], out[i, j + 1] = c[i, j] + s00, c[i, j + 1] + s01
            out[i, j + 2], out[i, j + 3] = c[i, j + 2] + s02, c[i, j + 3] + s03
            out[i + 1, j], out[i + 1, j + 1] = c[i + 1, j] + s10, c[i + 1, j + 1] + s11
            out[i + 1, j + 2], out[i + 1, j + 3] = c[i + 1, j + 2] + s12, c[i + 1, j + 3] + s13
        if n % 2:  # last row, odd n
            _addmv_row(out, c, a, a0, bt, n - 1, j, j + 4)
    if m % 4:  # last m % 4 columns, every row
        for i in range(n):
            _addmv_row(out, c, a, a0, bt, i, m - m % 4, m)


@njit(**JIT)
def _addmv_row(out, c, a, a0, bt, i, j0, j1):
    """out[i, j0:j1] = c[i, j0:j1] + a[i, a0:a0+k] @ bt[j0:j1]^T (edges of addmm_nt)."""
    k = bt.shape[1]
    x = a[i, a0:a0 + k]
    for j in range(j0, j1):
        bj = bt[j]
        s = a.dtype.type(0)
        for p in range(k):
            s += x[p] * bj[p]
        out[i, j] = c[i, j] + s


@njit(**JIT)
def copy_cols(dst, src):
    """dst[:, :m] = src (n, m): step 0's xp into the columns a kernel then activates in place.

    In-place loops must read and write through the same array: given two views
    of the same memory, LLVM's runtime overlap check sends them to scalar code.
    """
    for i in range(src.shape[0]):
        d, s = dst[i], src[i]
        for j in range(src.shape[1]):
            d[j] = s[j]


@njit(**JIT)
def transpose_each(w):
    """(S, H, G*H) -> (S, G*H, H) contiguous: W_h^T, the bt of the forward step product."""
    S, H, GH = w.shape
    wt = np.empty((S, GH, H), w.dtype)
    for s in range(S):  # explicit loops throughout: numba's slice assignment compiles for 10-30 s
        for i in range(H):
            for j in range(GH):
                wt[s, j, i] = w[s, i, j]
    return wt


# ---------------------------------------------------------------- the parallel split
# Read once at import: numba.get_num_threads() inside a kernel would stop it
# from being cached. set_num_threads() lower than this only makes items queue.
THREADS = numba.config.NUMBA_NUM_THREADS


@njit(cache=True)
def rank_chunks(offsets, streams):
    """Rank bounds (C+1,) splitting the batch into C = ceil(THREADS / streams) chunks.

    The work items of a call are (stream, chunk) pairs, about one per thread:
    S = 2 streams on 2 threads run one whole stream each; S = 1 splits the
    ranks in two. Lengths are sorted, so rank r runs L_r = #{t : n_t > r}
    steps; bounds are placed so each chunk holds about the same number of rows
    (tokens), with at least one rank per chunk.
    """
    B = offsets[1] - offsets[0]
    C = min(B, max(1, -(-THREADS // streams)))
    cum = np.zeros(B, np.int64)  # cum[r] = rows of ranks 0..r = L_0 + ... + L_r
    for t in range(len(offsets) - 1):
        for r in range(offsets[t + 1] - offsets[t]):
            cum[r] += 1
    for r in range(1, B):
        cum[r] += cum[r - 1]
    bounds = np.empty(C + 1, np.int64)
    bounds[0], bounds[C] = 0, B
    r = 0
    for k in range(1, C):
        target = cum[B - 1] * k / C
        while cum[r] < target:  # first r with ranks 0..r holding >= target rows
            r += 1
        cut = r + 1 if r == 0 or cum[r] - target < target - cum[r - 1] else r
        bounds[k] = min(max(cut, bounds[k - 1] + 1), B - (C - k))
    return bounds


@njit(cache=True)
def step_rows(offsets, t, r0, r1):
    """(row, prev, n): rows row:row+n hold step t of ranks r0.. < r1 still running,
    prev:prev+n the same ranks at step t-1 (meaningless at t = 0); n <= 0: none."""
    return offsets[t] + r0, offsets[t - 1] + r0, min(offsets[t + 1] - offsets[t], r1) - r0


@njit(**JIT)
def gather_t(src, c0, c1, offsets, r0, r1, lag):
    """(c1 - c0, m) transposed: column q = src[row of (t - lag, r), c0:c1] for the m pairs (t >= 1, r in r0:r1)
    running at t, t ascending. lag 1 gives the previous step's rows (h_{t-1}), lag 0 the step's own."""
    m = 0
    for t in range(1, len(offsets) - 1):
        m += max(0, min(offsets[t + 1] - offsets[t], r1) - r0)
    out = np.empty((c1 - c0, m), src.dtype)
    q = 0
    for t in range(1, len(offsets) - 1):
        row = offsets[t - lag] + r0
        for i in range(max(0, min(offsets[t + 1] - offsets[t], r1) - r0)):
            for j in range(c0, c1):
                out[j - c0, q] = src[row + i, j]
            q += 1
    return out


@njit(**JIT)
def add_weight_grad(dw, h, dxp, offsets, r0, r1):
    """dw (H, M) += sum_{t >= 1} h_{t-1}^T dxp_t over ranks r0:r1 (rnn, lstm: a = xp + h_{t-1} W_h).

    A hand product on transposed copies, inside the caller's work item: calling
    BLAS here lets its own thread pool fight numba's for the cores (10-50x
    slower on 2 threads, benchmarks/gemm_strategies.py).
    """
    addmm_nt(dw, dw, gather_t(h, 0, h.shape[1], offsets, r0, r1, 1), 0,
             gather_t(dxp, 0, dxp.shape[1], offsets, r0, r1, 0))


@njit(**JIT)
def sum_chunks(parts, streams):
    """(S*C, H, M) per-item partial weight gradients -> (S, H, M)."""
    C = parts.shape[0] // streams
    if C == 1:
        return parts
    out = np.zeros((streams,) + parts.shape[1:], parts.dtype)
    for s in range(streams):
        for k in range(C):
            for i in range(parts.shape[1]):
                for j in range(parts.shape[2]):
                    out[s, i, j] += parts[s * C + k, i, j]
    return out
