#!/usr/bin/env python3
"""How to do the per-step recurrent product inside the time loop: a table of the options.

    python benchmarks/gemm_strategies.py               # all shapes, ~4 minutes on 2 cores
    python benchmarks/gemm_strategies.py --quick       # fewer repeats
    python benchmarks/gemm_strategies.py --shapes 32x128 --streams 2
    NUMBA_NUM_THREADS=1 python benchmarks/gemm_strategies.py --kernels-only --cpu-time   # one core's cost

Each measurement runs the chain a recurrent kernel runs: packed batches of the
torch_baseline.py shape (Gamma(k=2) lengths, mean 14, max 40), for each step t
out_t = c_t + a_t @ W with a_t the previous step's output (first K columns,
scaled), so every step waits for the one before, as in a real recurrence.
Forward shapes: a (n_t, H) @ W (H, 4H) (LSTM); backward: (n_t, 4H) @ (4H, H).
Figures are GFLOP/s of the products over real rows, best of the repeats (the
machine is shared: the best run is the least disturbed one).

Strategies (rows of the table):
  blas        np.dot inside @njit (scipy's OpenBLAS; multi-threaded by itself)
  ikj         hand loops, out[i, :] += a[i, p] * W[p, :]: inner loop over the
              contiguous output dimension, vectorised (fastmath)
  ikj/cols    the same, prange over blocks of output columns (within a step)
  nt24        hand loops on W^T: 2x4 blocks of out kept in registers, inner
              dot product over p vectorised (kernels/_math.addmm_nt)
  nt24/cols   nt24, prange over blocks of output columns (within a step)
  numpy-py    np.matmul from Python per step (reference)
and, how the two threads are used (the suffix):
  -           one thread, streams one after the other
  /streams    prange over the S streams, each stream's time loop serial
  /ranks      prange over (stream, rank chunk) items: each item runs its own time
              loop over its sequences (what the kernels do; S=1 gets 2 chunks)
Finally the kernels themselves (<cell>_forward / <cell>_backward, ms per call).

Threads are pinned one per core (OMP_PROC_BIND=true, OMP_PLACES=cores, unless
set otherwise): on a machine shared with other jobs, Linux otherwise often
runs both numba threads on one core, and every parallel call takes the
scheduler's time slice (5-8 ms here, whatever the work). Check the machine
with ../shared/bench/peak_flops.py --probe first: parallel_capacity ~2.
"""
import argparse
import os
import sys
import time
from functools import partial

os.environ.setdefault("OMP_PROC_BIND", "true")  # read by libgomp when numba first starts its threads
os.environ.setdefault("OMP_PLACES", "cores")
from pathlib import Path

import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqtool.kernels import _math
from seqtool.kernels._math import JIT, addmm_nt, rank_chunks, step_rows
from seqtool.data.packing import make_packing

BLAS, IKJ, NT24 = 0, 1, 2
COL_BLOCK = 64


# ---------------------------------------------------------------- products
@njit(**JIT)
def ikj(out, c, a, w):
    """out = c + a @ w, inner loop over the contiguous output dimension (one thread)."""
    for i in range(a.shape[0]):
        for j in range(w.shape[1]):
            out[i, j] = c[i, j]
        for p in range(a.shape[1]):
            x = a[i, p]
            for j in range(w.shape[1]):
                out[i, j] += x * w[p, j]


@njit(parallel=True, **JIT)
def ikj_cols(out, c, a, w):
    """ikj, prange over column blocks: thread owns out[:, j0:j0+COL_BLOCK]."""
    m = w.shape[1]
    for blk in prange((m + COL_BLOCK - 1) // COL_BLOCK):
        j0, j1 = blk * COL_BLOCK, min(m, blk * COL_BLOCK + COL_BLOCK)
        for i in range(a.shape[0]):
            for j in range(j0, j1):
                out[i, j] = c[i, j]
            for p in range(a.shape[1]):
                x = a[i, p]
                for j in range(j0, j1):
                    out[i, j] += x * w[p, j]


@njit(parallel=True, **JIT)
def nt24_cols(out, c, a, wt):
    """addmm_nt, prange over column blocks: thread owns out[:, j0:j0+COL_BLOCK]."""
    m = wt.shape[0]
    for blk in prange((m + COL_BLOCK - 1) // COL_BLOCK):
        j0, j1 = blk * COL_BLOCK, min(m, blk * COL_BLOCK + COL_BLOCK)
        addmm_nt(out[:, j0:j1], c[:, j0:j1], a, 0, wt[j0:j1])


@njit(**JIT)
def blas(out, c, a, w):
    np.dot(a, w, out)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += c[i, j]


# ---------------------------------------------------------------- the chain of one (stream, rank chunk)
@njit(**JIT)
def step_input(a, out, xp, t, row, prev, n):
    """Step t's operand a (n, K) = 0.05 * out[rows of t-1] (columns repeated up to K); at t = 0 copies
    xp's rows into out instead and returns False (no product)."""
    if t == 0:
        for i in range(n):
            for j in range(xp.shape[1]):
                out[row + i, j] = xp[row + i, j]
        return False
    for i in range(n):
        for p in range(a.shape[1]):
            a[i, p] = xp.dtype.type(0.05) * out[prev + i, p % out.shape[1]]
    return True


@njit(**JIT)
def chain(kind, out, xp, w, wt, offsets, r0, r1):
    """out[rows of t] = xp[rows of t] + a_t @ W over the steps of ranks r0:r1, serial products."""
    a = np.empty((r1 - r0, w.shape[0]), xp.dtype)
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, r0, r1)
        if n <= 0:
            break
        if not step_input(a, out, xp, t, row, prev, n):
            continue
        if kind == BLAS:
            blas(out[row:row + n], xp[row:row + n], a[:n], w)
        elif kind == IKJ:
            ikj(out[row:row + n], xp[row:row + n], a[:n], w)
        else:
            addmm_nt(out[row:row + n], xp[row:row + n], a[:n], 0, wt)


@njit(**JIT)
def chain_cols(kind, out, xp, w, wt, offsets):
    """The chain of one whole stream, each product parallel within its step (prange over columns)."""
    a = np.empty((offsets[1], w.shape[0]), xp.dtype)
    for t in range(len(offsets) - 1):
        row, prev, n = step_rows(offsets, t, 0, offsets[1])
        if not step_input(a, out, xp, t, row, prev, n):
            continue
        if kind == IKJ:
            ikj_cols(out[row:row + n], xp[row:row + n], a[:n], w)
        else:
            nt24_cols(out[row:row + n], xp[row:row + n], a[:n], wt)


@njit(**JIT)
def run_serial(kind, out, xp, w, wt, offsets):
    for s in range(xp.shape[0]):
        chain(kind, out[s], xp[s], w[s], wt[s], offsets, 0, offsets[1])


@njit(parallel=True, **JIT)
def run_items(kind, out, xp, w, wt, offsets, bounds):
    """prange over (stream, rank chunk): item owns its ranks' rows of out[s]."""
    C = len(bounds) - 1
    for item in prange(xp.shape[0] * C):
        s, k = item // C, item % C
        chain(kind, out[s], xp[s], w[s], wt[s], offsets, bounds[k], bounds[k + 1])


@njit(**JIT)
def run_cols(kind, out, xp, w, wt, offsets):
    for s in range(xp.shape[0]):
        chain_cols(kind, out[s], xp[s], w[s], wt[s], offsets)


def run_numpy(out, xp, w, offsets):
    """np.matmul from Python per step (numpy's own OpenBLAS, its own threads)."""
    K = w.shape[1]
    for s in range(xp.shape[0]):
        o, x, ws = out[s], xp[s], w[s]
        o[:offsets[1]] = x[:offsets[1]]
        for t in range(1, len(offsets) - 1):
            n = offsets[t + 1] - offsets[t]
            row, prev = offsets[t], offsets[t - 1]
            a = o[prev:prev + n, :K] if K <= o.shape[1] else np.tile(o[prev:prev + n], (1, K // o.shape[1]))
            np.matmul(0.05 * a, ws, out=o[row:row + n])
            o[row:row + n] += x[row:row + n]


# ---------------------------------------------------------------- measurement
def lengths_like_baseline(rng, batch, mean_len=14, max_len=40):
    return np.clip(np.rint(rng.gamma(2.0, mean_len / 2.0, batch)), 1, max_len).astype(np.int64)


CLOCK = time.perf_counter  # --cpu-time: time.process_time


def best_times(fns, repeats, budget=3.0):
    """Best time of each function. Calls go round-robin so that a burst of load from elsewhere
    hits every strategy alike; a function stops after `repeats` calls, or after 3 once it has used
    `budget` seconds (the slow strategies)."""
    for fn in fns:
        fn()
    best, spent, calls = [np.inf] * len(fns), [0.0] * len(fns), [0] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            if calls[i] >= 3 and spent[i] > budget:
                continue
            t0 = CLOCK()
            fn()
            dt = CLOCK() - t0
            best[i], spent[i], calls[i] = min(best[i], dt), spent[i] + dt, calls[i] + 1
    return best


def strategies(S):
    """(name, fn(out, xp, w, wt, offsets)) rows of the table."""
    rows = [
        ("blas", lambda o, x, w, wt, off: run_serial(BLAS, o, x, w, wt, off)),
        ("ikj", lambda o, x, w, wt, off: run_serial(IKJ, o, x, w, wt, off)),
        ("ikj/cols", lambda o, x, w, wt, off: run_cols(IKJ, o, x, w, wt, off)),
        ("nt24", lambda o, x, w, wt, off: run_serial(NT24, o, x, w, wt, off)),
        ("nt24/cols", lambda o, x, w, wt, off: run_cols(NT24, o, x, w, wt, off)),
        ("numpy-py", lambda o, x, w, wt, off: run_numpy(o, x, w, off)),
    ]
    for kind, name in ((BLAS, "blas"), (IKJ, "ikj"), (NT24, "nt24")):
        if S > 1:
            rows.append((f"{name}/streams", lambda o, x, w, wt, off, k=kind: run_items(
                k, o, x, w, wt, off, np.array([0, off[1]], np.int64))))
        rows.append((f"{name}/ranks", lambda o, x, w, wt, off, k=kind: run_items(
            k, o, x, w, wt, off, rank_chunks(off, x.shape[0]))))
    return rows


def product_table(args):
    rng = np.random.default_rng(0)
    configs = []
    for shape in args.shapes:
        B, H = (int(v) for v in shape.split("x"))
        for S in args.streams:
            for direction in ("fwd", "bwd"):
                configs.append((B, H, S, direction))
    results = {}
    for cfg in configs:
        B, H, S, direction = cfg
        p = make_packing(lengths_like_baseline(rng, B))
        K, M = (H, 4 * H) if direction == "fwd" else (4 * H, H)
        xp = rng.standard_normal((S, p.n_rows, M)).astype(np.float32)
        w = (rng.standard_normal((S, K, M)) / np.sqrt(K)).astype(np.float32)
        wt = np.ascontiguousarray(w.transpose(0, 2, 1))
        flops = 2.0 * S * (p.n_rows - B) * K * M
        rows = strategies(S)
        outs = [np.zeros_like(xp) for _ in rows]
        calls = [partial(fn, o, xp, w, wt, p.offsets) for (_, fn), o in zip(rows, outs)]
        times = best_times(calls, args.repeats)
        for (name, _), o, t in zip(rows, outs, times):
            err = float(np.abs(o - outs[0]).max() / np.abs(outs[0]).max())
            results[(name, cfg)] = (flops / t / 1e9, err)
        print(f"  measured B={B} H={H} S={S} {direction}", file=sys.stderr, flush=True)
    names = [n for n, _ in strategies(2)]
    head = [f"B{B} H{H} S{S} {d}" for B, H, S, d in configs]
    print("\nGFLOP/s of the per-step products (float32, best of repeats; '-' = not applicable; "
          "* = result differs from blas by > 1e-5)\n")
    print("| strategy | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for name in names:
        cells = []
        for cfg in configs:
            r = results.get((name, cfg))
            cells.append("-" if r is None else f"{r[0]:.1f}" + ("*" if r[1] > 1e-5 else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")


def kernel_table(args):
    """The kernels as shipped: ms per call and GFLOP/s of the recurrent products they do."""
    from seqtool.kernels.gru import gru_backward, gru_forward
    from seqtool.kernels.lstm import lstm_backward, lstm_forward
    from seqtool.kernels.rnn import rnn_backward, rnn_forward

    cells = {"lstm": (4, lstm_forward, lstm_backward, ()), "gru": (3, gru_forward, gru_backward, ()),
             "rnn": (1, rnn_forward, rnn_backward, (False,))}
    rng = np.random.default_rng(1)
    print("\nKernels as shipped (float32): ms per call, GFLOP/s of their recurrent products "
          "(forward: h W; backward: da W^T in the loop + h^T da after it)\n")
    print("| cell | B | H | S | forward ms | GFLOP/s | backward ms | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        B, H = (int(v) for v in shape.split("x"))
        p = make_packing(lengths_like_baseline(rng, B))
        for cell, (G, fwd, bwd, opt) in cells.items():
            for S in args.streams:
                xp = rng.standard_normal((S, p.n_rows, G * H)).astype(np.float32)
                w = (rng.standard_normal((S, H, G * H)) / np.sqrt(H)).astype(np.float32)
                h, cache = fwd(xp, w, p.offsets, *opt)
                dh = rng.standard_normal(h.shape).astype(np.float32)
                tf, tb = best_times([partial(fwd, xp, w, p.offsets, *opt),
                                     partial(bwd, dh, xp, w, p.offsets, h, cache, *opt)], args.repeats)
                f = 2.0 * S * (p.n_rows - B) * H * G * H
                print(f"| {cell} | {B} | {H} | {S} | {1e3 * tf:.2f} | {f / tf / 1e9:.1f} | {1e3 * tb:.2f} | "
                      f"{2 * f / tb / 1e9:.1f} |", flush=True)


def main():
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (numba reaches BLAS inside @njit through it)
    except ImportError:
        sys.exit("gemm_strategies.py: the blas candidates need SciPy: pip install -e '.[bench]'")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="+", default=["32x128", "32x512", "256x128"], help="BxH")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=30, help="interleaved rounds; the best time counts")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--kernels-only", action="store_true")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by process CPU time: with NUMBA_NUM_THREADS=1, the compute cost whatever else runs")
    args = ap.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.quick:
        args.repeats = 5
    import numba
    print(f"load average {os.getloadavg()[0]:.1f} at the start", file=sys.stderr)
    if not args.kernels_only:
        product_table(args)
    kernel_table(args)
    print(f"\nnumba {numba.__version__}, {numba.get_num_threads()} threads ({numba.threading_layer()} layer), "
          f"work items per stream: ceil({_math.THREADS} / S); OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, OMP_PROC_BIND={os.environ['OMP_PROC_BIND']}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
