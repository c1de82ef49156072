"""``seqtool report``: how long a page takes, and what of it is matplotlib.

    python benchmarks/report.py -m MODEL [--eval FILE ...] [--repeat 3] [--threads 1]

Prints, best and median of ``--repeat`` runs each: the whole ``seqtool report`` command as a real
process (start-up, tagging and scoring every --eval file, drawing, writing), Python's start-up
with ``import matplotlib.figure`` alone, and the page's size. Without --eval it uses CoNLL-2003's
dev.jsonl twice (the issue's yardstick: a CoNLL model with two eval files). Needs the report extra.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEQTOOL_DATA", REPO.parent / "shared" / "data"))


def timed(cmd: list) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--eval", action="append", dest="evals")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    evals = args.evals or [str(DATA / "conll2003" / "dev.jsonl")] * 2
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "report.html")
        cmd = [sys.executable, "-m", "seqtool", "--threads", str(args.threads), "report", "-m", args.model,
               *[w for e in evals for w in ("--eval", e)], "-o", page]
        runs = [timed(cmd) for _ in range(args.repeat)]
        imports = [timed([sys.executable, "-c", "import matplotlib.figure"]) for _ in range(args.repeat)]
        bare = [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat)]
        size = os.path.getsize(page)
    print(f"seqtool report, {len(evals)} eval files: best {min(runs):.2f} s, median {statistics.median(runs):.2f} s")
    print(f"import matplotlib.figure: best {min(imports) - min(bare):.2f} s (above Python's start-up)")
    print(f"page: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
