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

Numba's on-disk cache keys a function on its own file only: after editing
this module, delete seqtool/kernels/__pycache__/*.nbi and *.nbc, or the cells
keep (and may crash on) code built against the old helpers.
"""
import numba
import numpy as np
from numba import njit, types
from numba.extending import overload, register_jitable

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH, "error_model": "numpy"}
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
        if n % 2:  # last row of an odd n: a 1x4 block
            x0 = a[n - 1, a0:a0 + k]
            s00 = s01 = s02 = s03 = zero
            for p in range(k):
                s00 += x0[p] * b0[p]
                s01 += x0[p] * b1[p]
                s02 += x0[p] * b2[p]
                s03 += x0[p] * b3[p]
            out[n - 1, j], out[n - 1, j + 1] = c[n - 1, j] + s00, c[n - 1, j + 1] + s01
            out[n - 1, j + 2], out[n - 1, j + 3] = c[n - 1, j + 2] + s02, c[n - 1, j + 3] + s03
    for j in range(m - m % 4, m):  # last m % 4 columns: one dot product each
        bj = bt[j]
        for i in range(n):
            x0 = a[i, a0:a0 + k]
            s00 = zero
            for p in range(k):
                s00 += x0[p] * bj[p]
            out[i, j] = c[i, j] + s00


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
    for s in range(S):
        for i0 in range(0, H, 8):  # blocks of 8 source rows: 8 contiguous writes per column
            for j in range(GH):
                for i in range(i0, min(i0 + 8, H)):
                    wt[s, j, i] = w[s, i, j]
    return wt


# ---------------------------------------------------------------- the parallel split
# Read once at import: numba.get_num_threads() inside a kernel would stop it
# from being cached. set_num_threads() lower than this only makes items queue.
THREADS = numba.config.NUMBA_NUM_THREADS


STEP_ROWS = 3  # fixed cost of a time step (W_h streamed through the cache, loop set-up) in rows of work


@njit(nogil=True, cache=True)
def rank_chunks(offsets, streams):
    """Rank bounds (C+1,) splitting the batch into at most ceil(THREADS / streams) chunks.

    The work items of a call are (stream, chunk) pairs, about one per thread:
    S = 2 streams on 2 threads run one whole stream each; S = 1 splits the
    ranks in two. Lengths are sorted, so the chunk of ranks r0:r1 runs
    L_r0 steps over sum(L_r0:r1) rows; bounds minimise the largest chunk's
    cost, rows + STEP_ROWS * steps (measured at H=128, B=32: 7.3 us a step,
    2.8 us a row), so the chunk of long sequences gets fewer rows.
    """
    B = offsets[1] - offsets[0]
    C = min(B, max(1, -(-THREADS // streams)))
    steps = np.zeros(B, np.int64)  # L_r
    for t in range(len(offsets) - 1):
        for r in range(offsets[t + 1] - offsets[t]):
            steps[r] += 1
    cum = np.zeros(B + 1, np.int64)  # cum[r] = rows of ranks 0..r-1
    for r in range(B):
        cum[r + 1] = cum[r] + steps[r]
    bounds = np.empty(C + 1, np.int64)
    lo, hi = 0, cum[B] + STEP_ROWS * steps[0]  # the best max cost lies in (lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fill_chunks(bounds, steps, cum, mid) <= C:
            hi = mid
        else:
            lo = mid
    return bounds[:_fill_chunks(bounds, steps, cum, hi) + 1].copy()


@njit(nogil=True, cache=True)
def _fill_chunks(bounds, steps, cum, max_cost):
    """Greedy left to right: chunks as long as their cost stays <= max_cost (at least one rank each).
    Writes bounds[0..count], returns count; count > len(bounds) - 1 means max_cost is too small."""
    B, count, r0 = len(steps), 0, 0
    bounds[0] = 0
    while r0 < B:
        r1 = r0 + 1
        while r1 < B and cum[r1 + 1] - cum[r0] + STEP_ROWS * steps[r0] <= max_cost:
            r1 += 1
        count += 1
        if count >= len(bounds):
            return count
        bounds[count], r0 = r1, r1
    return count


@njit(**JIT)
def forward_setup(xp, w_h, offsets, K):
    """Outputs and operands of a cell's forward: h (S, N, H), cache (S, N, K*H), W_h^T (S, G*H, H), rank bounds."""
    S, N, _ = xp.shape
    H = w_h.shape[1]
    return (np.empty((S, N, H), xp.dtype), np.empty((S, N, K * H), xp.dtype), transpose_each(w_h),
            rank_chunks(offsets, S))


@njit(**JIT)
def backward_setup(dh, xp, w_h, offsets):
    """Outputs and buffers of a cell's backward: dxp (S, N, G*H); dh's copy (S, N, H), to which each
    step adds its recurrent part; dw_h partials (S*C, H, G*H), one per work item; rank bounds."""
    bounds = rank_chunks(offsets, xp.shape[0])
    dw_parts = np.zeros((xp.shape[0] * (len(bounds) - 1),) + w_h.shape[1:], xp.dtype)
    return np.empty(xp.shape, xp.dtype), dh.copy(), dw_parts, bounds


@njit(nogil=True, cache=True)
def step_rows(offsets, t, r0, r1):
    """(row, prev, n): rows row:row+n hold step t of ranks r0.. < r1 still running,
    prev:prev+n the same ranks at step t-1 (meaningless at t = 0); n <= 0: none."""
    return offsets[t] + r0, offsets[t - 1] + r0, min(offsets[t + 1] - offsets[t], r1) - r0


@njit(**JIT)
def gather_t(src, cols, offsets, r0, r1, lag):
    """(cols, m) transposed: column q = src[row of (t - lag, r), :cols] for the m pairs (t >= 1, r in r0:r1)
    running at t, t ascending. lag 1 gives the previous step's rows (h_{t-1}), lag 0 the step's own."""
    m = 0
    for t in range(1, len(offsets) - 1):
        m += max(0, min(offsets[t + 1] - offsets[t], r1) - r0)
    out = np.empty((cols, m), src.dtype)
    q = 0
    for t in range(1, len(offsets) - 1):
        row = offsets[t - lag] + r0
        for i in range(max(0, min(offsets[t + 1] - offsets[t], r1) - r0)):
            for j in range(cols):
                out[j, q] = src[row + i, j]
            q += 1
    return out


@njit(**JIT)
def add_weight_grad(dw, h, dxp, offsets, r0, r1):
    """dw (H, M) += sum_{t >= 1} h_{t-1}^T dxp_t over ranks r0:r1 (rnn, lstm: a = xp + h_{t-1} W_h).

    A hand product on transposed copies, inside the caller's work item: calling
    BLAS here lets its own thread pool fight numba's for the cores (10-50x
    slower on 2 threads, benchmarks/gemm_strategies.py).
    """
    addmm_nt(dw, dw, gather_t(h, h.shape[1], offsets, r0, r1, 1), 0, gather_t(dxp, dxp.shape[1], offsets, r0, r1, 0))


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
