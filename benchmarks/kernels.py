#!/usr/bin/env python3
"""seqtool's kernels against PyTorch CPU on the configurations of ../shared/bench/torch_baseline.py.

    python benchmarks/kernels.py                 # table, all configurations, 2 threads
    python benchmarks/kernels.py --json          # one JSON object per configuration
    python benchmarks/kernels.py --only tagger_train_lstm --repeats 7
    python benchmarks/kernels.py --threads 1,2 --alone --only tagger_   # scaling from 1 to 2 threads

With several thread counts (``--threads 1,2``) each count runs in a process of its own (numba's and
PyTorch's pools sized once, nothing left spinning from the other count) and the table adds each
configuration's scaling against the first count. ``--alone`` also times seqtool in a process without
PyTorch: when PyTorch's OpenMP workers keep spinning after its calls (OMP_WAIT_POLICY, its block time),
they take cores from seqtool's next step in the alternating run, and "alone" shows by how much.

For every configuration both sides run the same batches (same generator and
seed as torch_baseline.py), one timed pass each, alternating seqtool / torch,
`--repeats` times; the figure is the median. Tokens are real (non-pad) tokens.
PyTorch runs every mode torch_baseline.py knows (padded with oneDNN, padded
without, packed) and the fastest is the anchor, as in torch_baseline.py.
GFLOP/s counts useful matmul FLOPs on real tokens (peak_flops.py's model);
the peak is peak_flops.py's practical fp32 peak at the same thread count.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seqtool.runtime import SPIN_COUNT  # noqa: E402  (light: no numpy, no numba)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the seqtool CLI runs: kernel threads are numba's
os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)  # as seqtool.runtime.configure sets it for every command
import numpy as np  # noqa: E402

DEFAULT_BENCH = HERE.parent.parent / "shared" / "bench"
VOCAB = 20000

# name -> (task, cell, hidden, train?, data shape); the shapes are torch_baseline.py's
FAMILIES = {
    "tagger_train": dict(task="tagger", embed=100, bidirectional=True, n_out=9, batch=32, mean_len=14, max_len=40),
    "tagger_infer": dict(task="tagger", embed=100, bidirectional=True, n_out=9, batch=256, mean_len=14, max_len=40),
    "clf_train": dict(task="classifier", embed=64, bidirectional=False, n_out=2, batch=64, mean_len=20, max_len=50),
    "siamese_train": dict(task="siamese", embed=128, bidirectional=False, n_out=0, batch=128, mean_len=12,
                          max_len=30),
}
DEFAULT_CONFIGS = ["tagger_train_lstm_h128", "tagger_infer_lstm_h128", "tagger_train_gru_h128",
                   "tagger_train_rnn_h128", "clf_train_lstm_h64", "clf_train_mean_h64", "siamese_train_lstm_h128",
                   "tagger_train_lstm_h512"]


def load_module(bench_dir: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, bench_dir / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_batches(seed, n_batches, batch, mean_len, max_len, n_labels, per_token):
    """The same draws as torch_baseline.make_batches (numpy side): Gamma(k=2) lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        lens = np.clip(np.rint(rng.gamma(2.0, mean_len / 2.0, batch)), 1, max_len).astype(np.int64)
        T = int(lens.max())
        mask = np.arange(T)[None, :] < lens[:, None]
        x = np.where(mask, rng.integers(1, VOCAB, (batch, T)), 0)
        y = np.where(mask, rng.integers(0, n_labels, (batch, T)), -100) if per_token \
            else rng.integers(0, n_labels, batch)
        out.append(dict(x=x, y=y, lens=lens, mask=mask))
    return out


# ---------------------------------------------------------------- seqtool side

def seqtool_step(name, fam, cell, hidden, train):
    """(step(batch) callable, prepare(batch) -> prepared batch) for one configuration."""
    from seqtool.model import optim
    from seqtool.data.dataset import Batch
    from seqtool.model.fit import make_optimizer
    from seqtool.data.packing import make_packing, pack
    from seqtool.model.tasks import ARCH_DEFAULTS, build_model, predict_logprobs, train_step

    cfg = dict(ARCH_DEFAULTS[fam["task"]], task=fam["task"], cell="none" if cell == "mean" else cell, hidden=hidden, embed=fam["embed"],
               bidirectional=fam["bidirectional"], dropout=0.0, layers=1, pool="last",
               crf=False, char=False, shape_dim=0)   # torch_baseline.py's plain model, whatever the tagger default
    model = build_model(cfg, VOCAB, max(fam["n_out"], 1), seed=0)
    opt = make_optimizer(model, dict(optimizer="adam", lr=1e-3, weight_decay=0.0))
    rng = np.random.default_rng(0)

    def prepare(b):
        if fam["task"] == "siamese":   # rows [0, P) side 1, [P, 2P) side 2, as torch_baseline
            P = len(b["lens"]) // 2
            p1, p2 = make_packing(b["lens"][:P]), make_packing(b["lens"][P:])
            return Batch(None, p1, pack(b["x"][:P], p1).astype(np.int32), None, None,
                         pack(b["x"][P:], p2).astype(np.int32), p2)
        p = make_packing(b["lens"])
        tags = pack(b["y"], p).astype(np.int32) if fam["task"] == "tagger" else None
        labels = b["y"].astype(np.int32) if fam["task"] == "classifier" else None
        return Batch(None, p, pack(b["x"], p).astype(np.int32), tags, labels)

    def step(b):
        if not train:
            predict_logprobs(model, b.ids, b.packing).argmax(axis=1)
            return
        model.zero_grads()
        train_step(fam["task"], model, b, rng)
        grads, rows = model.grad_list(), model.grad_rows()
        optim.clip_by_global_norm(grads, 5.0, rows)
        opt.step(grads, rows)
    return step, prepare


# ---------------------------------------------------------------- torch side

def torch_steps(tb, name, fam, cell, hidden, train, modes):
    """{mode: (step, batches)} for PyTorch, built with torch_baseline.py's own classes."""
    import torch

    out = {}
    for mode in (["padded"] if cell == "mean" else modes):
        torch.manual_seed(0)
        packed = mode == "packed"
        if fam["task"] == "tagger":
            model = tb.Tagger(cell, fam["embed"], hidden, 9, packed)
        elif fam["task"] == "classifier":
            model = tb.Classifier(cell, 64, 64, 2, packed)
        else:
            model = tb.Siamese(cell, 128, 128, 0.25, packed)
        step = tb.train_step_fn(model, tb.make_adam(model, "fused")) if train else tb.infer_step_fn(model)

        def run(b, step=step, mode=mode):
            torch.backends.mkldnn.enabled = mode != "padded-nodnn"
            step(b)
        out[mode] = run
    return out


def to_torch(b):
    import torch

    return dict(x=torch.from_numpy(b["x"]), y=torch.from_numpy(b["y"]), lens=torch.from_numpy(b["lens"]),
                mask=torch.from_numpy(b["mask"]))


# ---------------------------------------------------------------- timing

def timed_pass(step, batches):
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    return time.perf_counter() - t0


def run_config(name, args, tb, pf, peak):
    family = "_".join(name.split("_")[:2])
    fam = FAMILIES[family]
    cell, hidden = name.split("_")[2], int(name.split("_")[3][1:])
    train = "_train" in name
    n = args.pool if train else args.infer_pool
    raw = make_batches(args.seed, n, fam["batch"], fam["mean_len"], fam["max_len"], max(fam["n_out"], 1),
                       fam["task"] == "tagger")
    ntok = int(sum(b["lens"].sum() for b in raw))
    step, prepare = seqtool_step(name, fam, cell, hidden, train)
    ours = [prepare(b) for b in raw]
    theirs = None
    if tb is not None:
        steps = torch_steps(tb, name, fam, cell, hidden, train, args.modes.split(","))
        tbatches = [to_torch(b) for b in raw]
        theirs = {m: [] for m in steps}
    for i in range(args.warmup):
        step(ours[i % n])
        if theirs is not None:
            for s in steps.values():
                s(tbatches[i % n])
    our_times = []
    for _ in range(args.repeats):   # alternate: one pass each, so drift hits both sides alike
        our_times.append(timed_pass(step, ours))
        if theirs is not None:
            for m, s in steps.items():
                theirs[m].append(timed_pass(s, tbatches))
    ours_tps = ntok / statistics.median(our_times)
    row = {"config": name, "seqtool_tokens_per_s": round(ours_tps, 1)}
    if theirs is not None:
        rates = {m: ntok / statistics.median(t) for m, t in theirs.items()}
        best = max(rates, key=rates.get)
        row.update(torch_tokens_per_s=round(rates[best], 1), torch_mode=best, ratio=round(ours_tps / rates[best], 2))
    else:
        row.update(torch_tokens_per_s=None, torch_mode=None, ratio=None)
    if pf is not None:
        _, flops = pf.step_flops(name, ntok / n, fam["batch"])
        g = flops * n / statistics.median(our_times) / 1e9
        row.update(gflops=round(g, 2), peak_fraction=round(g / peak, 3) if peak else None)
    else:
        row.update(gflops=None, peak_fraction=None)
    row.update(threads=args.threads, batches=n, tokens_per_batch=round(ntok / n, 1))
    return row


def practical_peak(bench_dir: Path, threads: int) -> float | None:
    """peak_flops.py's best float32 square-matmul GFLOP/s at this thread count (a subprocess)."""
    cmd = [sys.executable, str(bench_dir / "peak_flops.py"), "--threads", str(threads), "--min-time", "1",
           "--repeats", "3"]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    for line in out.splitlines():
        r = json.loads(line)
        if r.get("kind") == "peak" and r.get("dtype") == "float32" and r.get("threads") == threads:
            return float(r["gflops"])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="2", help="thread count, or a comma-separated list (one process each)")
    ap.add_argument("--alone", action="store_true", help="also time seqtool in a process without PyTorch")
    ap.add_argument("--only", default="", help="comma-separated substrings of configuration names")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    ap.add_argument("--modes", default="padded,packed,padded-nodnn", help="PyTorch modes to try")
    ap.add_argument("--pool", type=int, default=16)
    ap.add_argument("--infer-pool", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH, help="folder of torch_baseline.py")
    ap.add_argument("--peak", type=float, help="practical fp32 peak GFLOP/s (default: run peak_flops.py)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(t) for t in str(args.threads).split(",") if t]
    if len(counts) > 1 or args.alone:
        return compare_threads(args, counts)
    args.threads = counts[0]

    import numba

    numba.set_num_threads(args.threads)
    tb = pf = None
    if args.bench_dir.is_dir():
        pf = load_module(args.bench_dir, "peak_flops")
        if not args.no_torch:
            try:
                tb = load_module(args.bench_dir, "torch_baseline")
                tb.torch.set_num_threads(args.threads)
            except ImportError:
                print("torch is not installed: seqtool side only", file=sys.stderr)
    peak = args.peak if args.peak else (practical_peak(args.bench_dir, args.threads) if pf else None)
    names = [c for c in args.configs.split(",") if c]
    only = [s for s in args.only.split(",") if s]
    rows = []
    for name in names:
        if only and not any(s in name for s in only):
            continue
        row = run_config(name, args, tb, pf, peak)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{name}: {row}", file=sys.stderr, flush=True)
    if not args.json:
        print_table(rows, peak)


def compare_threads(args, counts: list[int]) -> None:
    """Each configuration at each thread count (and with --alone, seqtool without PyTorch) in a process of its
    own, side by side: a configuration run after another in one process was measured up to 25% slower (the
    inference after the training configurations: 84k against 109k tok/s on one thread)."""
    passed = [a for a in sys.argv[1:] if a not in ("--alone", "--json")]
    passed = [a for i, a in enumerate(passed) if a != "--threads" and (i == 0 or passed[i - 1] != "--threads")
              and not a.startswith("--threads=")]
    only = [s for s in args.only.split(",") if s]
    names = [c for c in args.configs.split(",") if c and (not only or any(s in c for s in only))]
    peaks = {t: args.peak or (practical_peak(args.bench_dir, t) if args.bench_dir.is_dir() else None) for t in counts}
    runs = {}
    for name in names:
        for threads in counts:
            for alone in ([False, True] if args.alone else [False]):
                cmd = [sys.executable, __file__, *passed, "--configs", name, "--threads",
                       str(threads), "--json"]
                cmd += ["--no-torch"] if alone else []
                cmd += ["--peak", str(peaks[threads])] if peaks[threads] and not args.peak else []
                print("+", " ".join(cmd[1:]), file=sys.stderr, flush=True)
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rows = {r["config"]: r for r in map(json.loads, out.splitlines())}
                runs.setdefault((threads, alone), {}).update(rows)
    base = counts[0]
    head = (f"{'config':26} {'thr':>3} {'seqtool tok/s':>14} {'alone':>9} {'torch tok/s':>12} {'ratio':>6} "
            f"{'scaling':>8} {'alone scaling':>14} {'torch scaling':>14}")
    print(head)
    print("-" * len(head))
    for name in runs[base, False]:
        for threads in counts:
            r, b = runs[threads, False][name], runs[base, False][name]
            a, ab = (runs[threads, True][name]["seqtool_tokens_per_s"], runs[base, True][name]["seqtool_tokens_per_s"]) \
                if args.alone else (None, None)
            t, tb = r["torch_tokens_per_s"], b["torch_tokens_per_s"]
            print(f"{name:26} {threads:3d} {r['seqtool_tokens_per_s']:14.0f} {(f'{a:.0f}' if a else '-'):>9} "
                  f"{(f'{t:.0f}' if t else '-'):>12} {r['ratio'] if r['ratio'] else '-':>6} "
                  f"{r['seqtool_tokens_per_s'] / b['seqtool_tokens_per_s']:8.2f} "
                  f"{(f'{a / ab:.2f}' if a else '-'):>14} {(f'{t / tb:.2f}' if t and tb else '-'):>14}")


def print_table(rows, peak):
    head = f"{'config':26} {'seqtool tok/s':>14} {'torch tok/s':>12} {'mode':>13} {'ratio':>6} {'GFLOP/s':>8} {'peak':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        t = r["torch_tokens_per_s"]
        print(f"{r['config']:26} {r['seqtool_tokens_per_s']:14.0f} {t if t is not None else '-':>12} "
              f"{r['torch_mode'] or '-':>13} {r['ratio'] if r['ratio'] is not None else '-':>6} "
              f"{r['gflops'] if r['gflops'] is not None else '-':>8} "
              f"{r['peak_fraction'] if r['peak_fraction'] is not None else '-':>6}")
    print(f"(practical fp32 peak at these threads: {peak} GFLOP/s)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
