"""``seqtool tag --dask``: what a cluster buys, and what it costs.

    python benchmarks/dask_scaling.py [--copies 3] [--model /tmp/m] [--delay 1.0] [--partitions 12] [--no-cold]

1. Throughput. ``seqtool tag`` in one process against ``seqtool tag --dask local:1`` and
   ``local:2 -o DIR``, as real commands on CoNLL-2003 train.jsonl concatenated ``--copies``
   times. Tokens/s over the whole command: start-up, cluster, partitioning, everything.
   The part files are checked against the one-process output, byte for byte.
2. Overheads, one by one, on a local cluster: starting it; loading the model in a
   fresh worker; numba's kernels from the on-disk cache (and, unless --no-cold, compiled
   from an empty cache); partitioning (cutting the files, then the counting round that
   reads every record once more); and the client gather (records back through the
   client to stdout, against part files written by the workers).
3. A curve: one job of ``--partitions`` partitions that each sleep ``--delay`` seconds
   (a stand-in for slow partitions: a remote file system, a slow disk) on 1, 2 and 4
   workers. Only 2 cores here, so the compute part cannot scale past 2; the waiting does.

The model is the one ``seqtool train --task tagger --train train.jsonl --epochs 1 -o /tmp/m``
makes (trained first if ``--model`` does not exist yet).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEQTOOL_DATA", REPO.parent / "shared" / "data"))


def seqtool(*args, stdout=subprocess.DEVNULL) -> tuple[float, str]:
    """(wall seconds, stderr) of ``seqtool ARGS`` as a real process."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "seqtool", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - t0, done.stderr


def tokens_of(stderr: str) -> int:
    return int(re.search(r"(\d+) tokens tagged", stderr).group(1))


def prepare(args, work: Path) -> Path:
    if not (Path(args.model) / "config.json").exists():
        print(f"training {args.model} (one epoch on train.jsonl) ...", file=sys.stderr)
        seqtool("train", "--task", "tagger", "--train", DATA / "conll2003" / "train.jsonl", "--epochs", 1,
                "-o", args.model)
    big = work / f"train_x{args.copies}.jsonl"
    big.write_bytes((DATA / "conll2003" / "train.jsonl").read_bytes() * args.copies)
    return big


def throughput(args, big: Path, work: Path) -> None:
    print(f"1. throughput: seqtool tag on {big.name} ({big.stat().st_size / 1e6:.1f} MB)")
    ref = work / "single.jsonl"
    with open(ref, "wb") as f:
        seconds, err = seqtool("tag", "-m", args.model, big, stdout=f)
    tokens = tokens_of(err)
    rows = [("one process", seconds)]
    for n in (1, 2):
        out = work / f"parts{n}"
        seconds, err = seqtool("tag", "-m", args.model, "--dask", f"local:{n}", big, "-o", out)
        assert tokens_of(err) == tokens, err
        same = b"".join(p.read_bytes() for p in sorted(out.iterdir())) == ref.read_bytes()
        rows.append((f"--dask local:{n} -o DIR" + ("" if same else "  (OUTPUT DIFFERS)"), seconds))
    for name, seconds in rows:
        print(f"   {name:<32} {seconds:7.1f} s  {tokens / seconds:9,.0f} tokens/s")


def _load(model: str) -> float:
    from seqtool.distributed.tasks import worker_model

    t0 = time.perf_counter()
    worker_model(model, None)
    return time.perf_counter() - t0


def _predict_twice(model: str, path: str) -> tuple[float, float]:
    """Seconds of the first prediction in this process (numba loads or compiles its kernels) and of a second."""
    import itertools
    import json

    from seqtool.distributed.tasks import worker_model
    from seqtool.predict import predict_chunk

    loaded = worker_model(model, None)
    times = []
    for _ in range(2):
        with open(path) as f:
            chunk = [loaded.encode(json.loads(line)) for line in itertools.islice(f, 64)]
        t0 = time.perf_counter()
        predict_chunk(loaded, chunk)
        times.append(time.perf_counter() - t0)
    return times[0], times[1]


def overheads(args, work: Path) -> None:
    from seqtool.distributed import tasks
    from seqtool.distributed.run import partitions
    from seqtool.distributed.cluster import InOrder, collect, connect
    from seqtool.distributed.parts import part_size, plan

    src = str(DATA / "conll2003" / "train.jsonl")
    print("2. overheads (local cluster of 1 worker process unless said; train.jsonl once)")
    for n in (1, 2):
        t0 = time.perf_counter()
        with connect(f"local:{n}"):
            start = time.perf_counter() - t0
            t0 = time.perf_counter()
        print(f"   cluster start, local:{n}           {start:7.2f} s  (stop: {time.perf_counter() - t0:.2f} s)")
    with connect("local:1") as s:
        first = s.client.run(_load, args.model)
        again = s.client.run(_load, args.model)
        print(f"   model load in a fresh worker      {min(first.values()):7.2f} s  (imports + weights + build; "
              f"kept: {max(again.values()) * 1e3:.1f} ms the next time)")
        cached, warm = next(iter(s.client.run(_predict_twice, args.model, src).values()))
        print(f"   first 64 sentences, cached kernels {cached:6.2f} s  (numba loads them from NUMBA_CACHE_DIR; "
              f"warm: {warm:.2f} s)")
        opts = {"format": None, "batch_size": 256, "skip_invalid": False, "threads": s.threads,
                "output_format": "jsonl", "delay": 0.0}
        t0 = time.perf_counter()
        cut = plan([src], None, part_size([src], s.workers))
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        parts, _ = partitions(s, [src], args.model, "tag", opts)
        t_count = time.perf_counter() - t0
        print(f"   partitioning: cut {len(cut)} ranges     {t_plan:7.3f} s  (seeks only)")
        print(f"   partitioning: counting round      {t_count:7.2f} s  (every record read and checked once more)")
        gathered = {}
        os.makedirs(work / "gather")
        with open(os.devnull, "wb") as devnull:
            for where, out_dir, sink in (("parts", str(work / "gather"), None), ("client", None, InOrder(devnull))):
                t0 = time.perf_counter()
                futures = [s.client.submit(tasks.tag_part, p, args.model, opts, out_dir, pure=False) for p in parts]
                collect(s, futures, parts, on_result=sink)
                gathered[where] = time.perf_counter() - t0
        print(f"   client gather (records to stdout) {gathered['client']:7.2f} s  (the same job writing part files "
              f"on the worker, fsync'd: {gathered['parts']:.2f} s)")
    if args.cold:
        saved = os.environ.get("NUMBA_CACHE_DIR")
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-empty-")
        try:
            with connect("local:1") as s:
                cold, _ = next(iter(s.client.run(_predict_twice, args.model, src).values()))
            print(f"   first 64 sentences, empty cache   {cold:7.2f} s  (numba compiles every kernel: what the "
                  f"shared cache saves each new worker)")
        finally:
            shutil.rmtree(os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)
            if saved is None:
                del os.environ["NUMBA_CACHE_DIR"]
            else:
                os.environ["NUMBA_CACHE_DIR"] = saved


def curve(args, work: Path) -> None:
    from seqtool.distributed.run import run_tag

    src = DATA / "conll2003" / "train.jsonl"
    size = src.stat().st_size // args.partitions + 1
    print(f"3. one job vs workers: train.jsonl in {args.partitions} partitions, each sleeping {args.delay:g} s")
    base = None
    for n in (1, 2, 4):
        t0 = time.perf_counter()
        report = run_tag(args.model, [str(src)], dask=f"local:{n}", output=str(work / f"curve{n}"), progress=False,
                         partition_bytes=size, delay=args.delay)
        seconds = time.perf_counter() - t0
        base = base or seconds
        tasks = int(re.search(r"\((\d+) partition", report.summary).group(1))
        print(f"   local:{n}  {seconds:7.1f} s  speed-up {base / seconds:4.2f}  "
              f"(sleep alone: {args.delay * args.partitions / n:5.1f} s of it at best)  {tasks} partitions counted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=3, help="train.jsonl concatenated this many times")
    parser.add_argument("--model", default="/tmp/m", help="a tagger (trained first when missing)")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each partition sleeps in the curve")
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the curve's job")
    parser.add_argument("--no-cold", dest="cold", action="store_false", help="skip the compile from an empty cache")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as tmp:
        work = Path(tmp)
        big = prepare(args, work)
        print(f"machine: {os.cpu_count()} cores; model {args.model}")
        throughput(args, big, work)
        overheads(args, work)
        curve(args, work)


if __name__ == "__main__":
    main()
