#!/usr/bin/env python3
"""End-to-end figures of the command line: start-up, streaming ``tag`` throughput and memory.

    python benchmarks/stream.py -m MODEL [--data FILE.jsonl]

Runs the installed ``seqtool`` as a user does (a fresh process each time, the
compile cache warm after the first run) and prints one JSON object per figure:
  help_s          wall time of ``seqtool --help`` (best of 5)
  tag_one_s       wall time of ``seqtool tag -m MODEL`` on one sentence (best of 5)
  tag_tokens_per_s  streaming JSONL in -> JSONL out on FILE repeated to ~--tokens tokens
  tag_peak_rss_mb   the tag process's peak memory at 1x and 8x that input (flat = streaming)
  vocab_pad_records_per_s  ``seqtool vocab -o v | seqtool pad`` on FILE
"""
import argparse
import json
import os
import resource
import shutil
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


def run_measured(cmd, stdin_path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process reading stdin_path."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(stdin_path, "rb") as f:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


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
    args = ap.parse_args()
    st = seqtool()
    print(json.dumps({"figure": "help_s", "value": round(best_wall(st + ["--help"]), 3)}), flush=True)
    one = (json.dumps({"tokens": ["Peter", "Blackburn", "lives", "in", "Brussels", "."]}) + "\n").encode()
    subprocess.run(st + ["tag", "-m", args.model], input=one, stdout=subprocess.DEVNULL, check=True)  # warm cache
    print(json.dumps({"figure": "tag_one_s", "value": round(best_wall(st + ["tag", "-m", args.model], one), 3)}),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp, "small.jsonl"), Path(tmp, "big.jsonl")
        n_small = repeat_file(args.data, small, args.tokens)
        n_big = repeat_file(args.data, big, 8 * args.tokens)
        wall, rss_small = run_measured(st + ["tag", "-m", args.model], small)
        print(json.dumps({"figure": "tag_tokens_per_s", "value": round(n_small / wall), "tokens": n_small,
                          "seconds": round(wall, 2)}), flush=True)
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
    os.environ.get("SEQTOOL_THREADS")


if __name__ == "__main__":
    main()
