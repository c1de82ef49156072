#!/usr/bin/env python3
"""Where a training step's time goes, per phase, at each thread count (issue: training on every core).

    python benchmarks/profile_step.py --threads 1,2                       # default tagger on CoNLL-2003
    python benchmarks/profile_step.py --threads 1,2 --records 3000 --epochs 2
    python benchmarks/profile_step.py --threads 1,2 -- --hidden 128 --no-crf   # any `seqtool train` options

`seqtool train` runs as a user runs it (run_train: the default options of the task, real batches), each
thread count in a process of its own; the phases are timed by wrapping the layers' forward and backward,
the recurrent layers' BLAS products and cell kernels, the loss, clipping, the optimiser, zeroing and batch
building. Times are exclusive (a phase's time leaves out the phases inside it); "other" is the epoch's
time that no wrapper saw (the loop, progress, Python between calls). The first epoch is left out (numba
loads or compiles its kernels there). The last column, the time at 1 thread over the time at the largest
count, is each phase's own scaling; the serial fraction (Amdahl's) is the share of the 1-thread step
spent in phases that do not get faster.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the seqtool CLI runs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "conll2003" / "train.jsonl"


class PhaseClock:
    """Exclusive wall time per phase name; wrapped calls may nest."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self._inner = []            # per open call: time spent in wrapped calls inside it
        self.on = False

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            self._inner.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                inner = self._inner.pop()
                dt = time.perf_counter() - t0
                self.seconds[name] += dt - inner
                self.calls[name] += 1
                if self._inner:
                    self._inner[-1] += dt
        return timed


def instrument_layers(clock: PhaseClock, layer) -> None:
    """Time every layer's forward and the backward it returns, under the layer's class name."""
    name = type(layer).__name__
    forward = layer.forward

    def forward_timed(x, ctx, train):
        y, backward = forward(x, ctx, train)
        return y, clock.wrap(f"{name} backward", backward)
    layer.forward = clock.wrap(f"{name} forward", forward_timed)
    if hasattr(layer, "loss"):
        layer.loss = clock.wrap(f"{name} loss", layer.loss)
    for child in layer.layers:
        instrument_layers(clock, child)


def instrument_modules(clock: PhaseClock) -> None:
    """Module-level functions the step calls by global name."""
    from seqtool.kernels import loss as kl
    from seqtool.model import fit, optim, recurrent

    recurrent.stream_matmul = clock.wrap("recurrent input/weight products (BLAS)", recurrent.stream_matmul)
    cell_kernels = recurrent._cell_kernels
    recurrent._cell_kernels = lambda cell: tuple(
        clock.wrap(f"recurrence {part}", k) for part, k in zip(("forward", "backward"), cell_kernels(cell)))
    kl.softmax_xent = clock.wrap("softmax loss", kl.softmax_xent)
    optim.clip_by_global_norm = clock.wrap("clip (global norm)", optim.clip_by_global_norm)
    optim.global_norm = clock.wrap("clip (global norm)", optim.global_norm)
    fit._training_batch = clock.wrap("batch building", fit._training_batch)


def profile_run(threads: int, data: str, records: int, epochs: int, options: list[str]) -> dict:
    """Train in this process at ``threads``; the per-phase seconds of epochs 2.. and the step count."""
    from seqtool.cli.app import cli   # noqa: F401  (the same imports as the command)
    from seqtool.model import fit as fit_module
    from seqtool.runtime import configure
    from seqtool.stages import train as train_stage

    configure(threads)                # as the command: before numba starts its threads
    clock = PhaseClock()
    instrument_modules(clock)
    real_fit = fit_module.fit
    epoch_seconds, steps = [], []

    def fit_profiled(job, state):
        instrument_layers(clock, job.model)
        job.model.zero_grads = clock.wrap("zero gradients", job.model.zero_grads)
        job.model.grad_rows = clock.wrap("gradient lists", job.model.grad_rows)
        state.optimizer.step = clock.wrap("optimiser (Adam)", state.optimizer.step)
        progress = job.progress

        def counting(record, step):
            if record is not None:
                if clock.on:
                    epoch_seconds.append(record.seconds)
                clock.on = True          # from epoch 2: epoch 1 loads (or compiles) the kernels
            elif clock.on:
                steps[len(epoch_seconds):] = [step["step"]]
            if progress is not None:
                progress(record, step)
        job.progress = counting
        return real_fit(job, state)

    train_stage.fit = fit_profiled
    head = _head(data, records)
    out = Path(f"/tmp/seqtool-profile-{os.getpid()}")
    try:
        train_stage.run_train(head, output=str(out), threads=threads, progress=False, epochs=epochs,
                              **_options(options))
    finally:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        os.unlink(head)
    total = sum(epoch_seconds)
    phases = dict(clock.seconds)
    phases["other (loop, Python between calls)"] = max(0.0, total - sum(phases.values()))
    return {"threads": threads, "steps": sum(steps), "seconds": total, "phases": phases}


def _head(data: str, records: int) -> str:
    path = f"/tmp/seqtool-profile-{os.getpid()}.jsonl"
    with open(data) as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i >= records:
                break
            dst.write(line)
    return path


def _options(words: list[str]) -> dict:
    """`--hidden 128 --no-crf` -> {"hidden": "128", "crf": False} (run_train resolves the types)."""
    from seqtool.cli.app import cli

    train = cli.commands["train"]
    ctx = train.make_context("train", ["-o", "/tmp/x", *words], resilient_parsing=True)
    given = {name: value for name, value in ctx.params.items()
             if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    given.pop("output", None)
    return given


def print_table(runs: list[dict]) -> None:
    base, top = runs[0], runs[-1]
    names = sorted(set().union(*(r["phases"] for r in runs)), key=lambda n: -base["phases"].get(n, 0))
    head = f"{'phase (ms per step)':42}" + "".join(f"{str(r['threads']) + ' thr':>10}{'share':>7}" for r in runs) \
        + f"{'scaling':>9}"
    print(head)
    print("-" * len(head))
    serial = 0.0
    for n in names:
        cells, per = "", []
        for r in runs:
            ms = 1000 * r["phases"].get(n, 0.0) / max(r["steps"], 1)
            per.append(ms)
            cells += f"{ms:10.3f}{100 * r['phases'].get(n, 0.0) / r['seconds']:6.1f}%"
        scaling = per[0] / per[-1] if per[-1] > 0 else float("nan")
        if scaling < 1.15:
            serial += per[0]
        print(f"{n[:42]:42}{cells}{scaling:9.2f}")
    steps = [1000 * r["seconds"] / max(r["steps"], 1) for r in runs]
    print(f"{'step (ms)':42}" + "".join(f"{s:10.3f}{'':7}" for s in steps) + f"{steps[0] / steps[-1]:9.2f}")
    print(f"serial fraction at 1 thread (phases scaling < 1.15x from {base['threads']} to {top['threads']} "
          f"threads): {serial / steps[0]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (one process each)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="training records (JSONL)")
    ap.add_argument("--records", type=int, default=4000, help="the first N records of --data")
    ap.add_argument("--epochs", type=int, default=3, help="epochs (the first is not counted)")
    ap.add_argument("--json", action="store_true", help="one JSON object per thread count")
    ap.add_argument("train_options", nargs="*", help="options for seqtool train, after --")
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",") if t]
    if len(counts) == 1 and args.json:
        print(json.dumps(profile_run(counts[0], args.data, args.records, args.epochs, args.train_options)))
        return
    runs = []
    for threads in counts:
        cmd = [sys.executable, __file__, "--threads", str(threads), "--data", args.data, "--records",
               str(args.records), "--epochs", str(args.epochs), "--json", "--", *args.train_options]
        print("+", " ".join(cmd[1:]), file=sys.stderr, flush=True)
        runs.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    if args.json:
        for r in runs:
            print(json.dumps(r))
    else:
        print_table(runs)


if __name__ == "__main__":
    main()
