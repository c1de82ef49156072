"""The installed ``seqtool`` as real processes joined by pipes, as a user runs it."""
import json
import os
import shutil
import subprocess
import sys
from itertools import groupby
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
SEQTOOL = [shutil.which("seqtool")] if shutil.which("seqtool") else [sys.executable, "-m", "seqtool"]


def pipeline(*commands: list[str], stdin=None, cwd=REPO) -> tuple[list[subprocess.Popen], bytes]:
    """Run commands joined by pipes; (processes, last stdout). Every stderr is kept on its process."""
    procs, prev = [], stdin
    for cmd in commands:
        p = subprocess.Popen(cmd, stdin=prev, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        if prev is not None and prev is not stdin:
            prev.close()  # only the next process holds the read end, so it sees EPIPE when that one exits
        procs.append(p)
        prev = p.stdout
    out = procs[-1].stdout.read()
    for p in procs:
        p.wait()
        p.stderr_text = p.stderr.read().decode()
        p.stdout.close()
        p.stderr.close()
    return procs, out


def check_batches(records: list[dict], batch_size: int) -> None:
    """Consecutive batches of batch_size; inside one, every padded array has the same length."""
    for _, group in groupby(records, key=lambda r: r["batch"]):
        group = list(group)
        assert len(group) <= batch_size
        assert len({len(r[k]) for r in group for k in ("ids", "tag_ids", "mask")}) == 1
        for r in group:
            assert sum(r["mask"]) == r["length"] == len(r["tokens"])
            assert r["mask"][:r["length"]] == [1] * r["length"] and set(r["ids"][r["length"]:]) <= {0}


def test_vocab_pipe_pad_on_the_sample(tmp_path):
    vocab = tmp_path / "vocab.json"
    procs, out = pipeline(SEQTOOL + ["vocab", "-o", str(vocab), "sample_data/ner.jsonl"],
                          SEQTOOL + ["pad", "--batch-size", "32"])
    assert [p.returncode for p in procs] == [0, 0]
    assert procs[0].stderr_text.startswith("seqtool vocab: 400 records; ")
    assert procs[1].stderr_text.startswith("seqtool pad: 400 records in 13 batches; ")
    records = [json.loads(line) for line in out.splitlines()]
    raw = [json.loads(line) for line in (REPO / "sample_data" / "ner.jsonl").read_text().splitlines()]
    assert [(r["id"], r["tokens"], r["tags"]) for r in records] == [(r["id"], r["tokens"], r["tags"]) for r in raw]
    check_batches(records, 32)
    assert json.loads(vocab.read_text())["format_version"] == 1


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_text((REPO / "sample_data" / "ner.jsonl").read_text() * 10)  # well over a pipe buffer
    procs, out = pipeline(SEQTOOL + ["vocab", "-o", str(tmp_path / "v.json"), str(big)],
                          SEQTOOL + ["pad"], ["head", "-1"])
    assert len(out.splitlines()) == 1
    for p in procs[:2]:
        assert p.stderr_text == "" and p.returncode == 141  # 128 + SIGPIPE, like any Unix filter
    assert json.loads((tmp_path / "v.json").read_text())["records"] == 4000  # saved before writing


def test_help_does_not_import_numeric_modules():
    code = ("import sys\nfrom seqtool.cli import main\nsys.argv = ['seqtool', '--help']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('numba', 'numpy', 'tqdm', 'seqtool.stages.base') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_readme_main_command_runs(tmp_path):
    readme = (REPO / "README.md").read_text().splitlines()
    command = readme[readme.index("<!-- main-command -->") + 2]
    assert command.startswith("pip install '.[report]' && ")
    env = {**os.environ, "PATH": os.path.dirname(SEQTOOL[0]) + os.pathsep + os.environ["PATH"]}
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command.removeprefix("pip install '.[report]' && ")],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_real_conll2003_through_vocab_and_pad(shared_data, tmp_path):
    train = shared_data / "conll2003" / "train.jsonl"
    with open(train, "rb") as f:
        procs, out = pipeline(SEQTOOL + ["vocab", "-o", str(tmp_path / "v.json")],
                              SEQTOOL + ["pad", "--batch-size", "32"], stdin=f)
    assert [p.returncode for p in procs] == [0, 0], [p.stderr_text for p in procs]
    records = [json.loads(line) for line in out.splitlines()]
    raw = [json.loads(line) for line in train.read_text().splitlines()]
    assert len(records) == len(raw) == 14041
    for r, original in zip(records, raw):
        assert {k: r[k] for k in original} == original
    check_batches(records, 32)
