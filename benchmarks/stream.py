#!/usr/bin/env python3
"""End-to-end figures of the command line: start-up, streaming ``tag`` throughput and memory.

    python benchmarks/stream.py -m MODEL [--data FILE.jsonl]

Runs the installed ``seqtool`` as a user does (a fresh process each time, the
compile cache warm after the first run) and prints one JSON object per figure:
  help_s          wall time of ``seqtool --help`` (best of 5)
  tag_one_s       wall time of ``seqtool tag -m MODEL`` on one sentence (best of 5)
  tag_start_s     wall time on the first 300 records of FILE: more than one chunk, so the numba
                  kernels load (what every larger input pays once; best of 5)
  tag_tokens_per_s  streaming JSONL in -> JSONL out on FILE repeated to ~--tokens tokens, start-up
                  included; best and median of --repeats runs
  tag_tokens_per_s_8x  the same on 8x that input (start-up weighs less)
  tag_peak_rss_mb   the tag process's peak memory at 1x and 8x that input (flat = streaming)
  vocab_pad_records_per_s  ``seqtool vocab -o v | seqtool pad`` on FILE

The machine's speed varies between identical runs (+-20% here, more when a neighbour is busy), so the
throughput figures are given as best and median of several runs.
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003" / "dev.jsonl"


def seqtool() -> list[str]:
    """The console script installed beside this Python (as a venv user runs it), else the one on PATH.

    A version manager's shim on PATH (pyenv's is a shell script) adds ~0.25 s to every start."""
    beside = Path(sys.executable).parent / "seqtool"
    exe = str(beside) if beside.exists() else shutil.which("seqtool")
    return [exe] if exe else [sys.executable, "-m", "seqtool"]


def best_wall(cmd, stdin_bytes=b"", repeats=5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, input=stdin_bytes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def run_measured(cmd, stdin_path) -> float:
    """Wall seconds of one child process reading stdin_path."""
    with open(stdin_path, "rb") as f:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0


def throughput(cmd, path, tokens: int, repeats: int) -> dict:
    walls = sorted(run_measured(cmd, path) for _ in range(repeats))
    return {"value": round(tokens / walls[0]), "median": round(tokens / statistics.median(walls)),
            "tokens": tokens, "seconds": [round(w, 2) for w in walls]}


def repeat_file(src: Path, dst: Path, tokens_wanted: int) -> int:
    lines = src.read_text(encoding="utf-8").splitlines()
    per_pass = sum(len(json.loads(line).get("tokens", [])) for line in lines)
    passes = max(1, tokens_wanted // max(per_pass, 1))
    with open(dst, "w", encoding="utf-8") as f:
        for _ in range(passes):
            f.write("\n".join(lines) + "\n")
    return per_pass * passes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--tokens", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    st = seqtool()
    print(json.dumps({"figure": "help_s", "value": round(best_wall(st + ["--help"]), 3)}), flush=True)
    one = (json.dumps({"tokens": ["Peter", "Blackburn", "lives", "in", "Brussels", "."]}) + "\n").encode()
    subprocess.run(st + ["tag", "-m", args.model], input=one, stdout=subprocess.DEVNULL, check=True)  # warm cache
    print(json.dumps({"figure": "tag_one_s", "value": round(best_wall(st + ["tag", "-m", args.model], one), 3)}),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start, small, big = Path(tmp, "start.jsonl"), Path(tmp, "small.jsonl"), Path(tmp, "big.jsonl")
        start.write_text("".join(args.data.read_text(encoding="utf-8").splitlines(keepends=True)[:300]),
                         encoding="utf-8")
        tag = st + ["tag", "-m", args.model]
        print(json.dumps({"figure": "tag_start_s", "value": round(best_wall(tag, start.read_bytes()), 3)}),
              flush=True)
        n_small = repeat_file(args.data, small, args.tokens)
        n_big = repeat_file(args.data, big, 8 * args.tokens)
        print(json.dumps({"figure": "tag_tokens_per_s", **throughput(tag, small, n_small, args.repeats)}),
              flush=True)
        print(json.dumps({"figure": "tag_tokens_per_s_8x", **throughput(tag, big, n_big, args.repeats)}),
              flush=True)
        # a fresh interpreter per measurement so RUSAGE_CHILDREN's maximum is this run's own
        code = ("import resource,subprocess,sys;"
                "subprocess.run(sys.argv[1:-1],stdin=open(sys.argv[-1],'rb'),stdout=subprocess.DEVNULL,check=True);"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)")
        rss = [float(subprocess.run([sys.executable, "-c", code, *st, "tag", "-m", args.model, str(p)],
                                    capture_output=True, text=True, check=True).stdout) for p in (small, big)]
        print(json.dumps({"figure": "tag_peak_rss_mb", "tokens": [n_small, n_big],
                          "value": [round(r, 1) for r in rss]}), flush=True)
        vocab = Path(tmp, "v.json")
        t0 = time.perf_counter()
        with open(args.data, "rb") as f:
            p1 = subprocess.Popen(st + ["vocab", "-o", str(vocab)], stdin=f, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
            p2 = subprocess.run(st + ["pad", "--batch-size", "32"], stdin=p1.stdout, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, check=True)
            p1.wait()
        wall = time.perf_counter() - t0
        n = p2.stdout.count(b"\n")
        print(json.dumps({"figure": "vocab_pad_records_per_s", "value": round(n / wall), "records": n,
                          "seconds": round(wall, 2)}), flush=True)


if __name__ == "__main__":
    main()
