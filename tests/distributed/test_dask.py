"""``--dask``: tag, eval and dedupe --group on a real LocalCluster of 2 worker processes.

The reference is the single-process command run as a real process (``python -m seqtool``):
the CLI pins OpenBLAS to one thread, as Dask pins its workers, and a product's last bit
depends on that. Every comparison is byte for byte (stdout, or the part files concatenated).
One cluster serves the whole module; the models are tiny and trained once.
"""
import itertools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.model.grouping import BLOCK
from seqtool.distributed.parts import plan
from seqtool.stages.train import run_train

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A tiny tagger and a tiny Siamese model (seconds to train)."""
    d = tmp_path_factory.mktemp("models")
    run_train(str(SAMPLE / "ner.jsonl"), output=str(d / "tagger"), task="tagger", epochs=1, hidden=8, embed=8,
              progress=False, threads=2)
    run_train(str(SAMPLE / "pairs.jsonl"), output=str(d / "siamese"), task="siamese", epochs=1, hidden=8, embed=8,
              progress=False, threads=2, dev=str(SAMPLE / "pairs.jsonl"))
    return {"tagger": str(d / "tagger"), "siamese": str(d / "siamese")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The scheduler address of a LocalCluster: 2 worker processes, 1 thread each, a shared numba cache."""
    distributed = pytest.importorskip("distributed")
    env = {"NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR")
           or os.path.join(tempfile.gettempdir(), "seqtool-test-numba-cache")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)                      # the worker processes inherit it
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield c.scheduler_address
    finally:
        c.close()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def single(*args) -> subprocess.CompletedProcess:
    """``seqtool ARGS`` as a real process: the single-process reference."""
    return subprocess.run([sys.executable, "-m", "seqtool", *map(str, args)], capture_output=True, cwd=REPO,
                          check=False)


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def concat(folder: Path) -> bytes:
    names = sorted(os.listdir(folder))
    assert all(n.startswith("part-") for n in names), names            # no temporary left behind
    assert names == [f"part-{i:05d}.{names[0].rsplit('.', 1)[1]}" for i in range(len(names))]
    return b"".join((folder / n).read_bytes() for n in names)


@pytest.fixture
def small_parts(monkeypatch):
    """Partitions of a few KB, so that the sample files make a dozen (and batches cross them)."""
    monkeypatch.setattr("seqtool.distributed.parts.MIN_PART", 3000)
    monkeypatch.setattr("seqtool.distributed.parts.part_size", lambda files, workers: 3000)


# ---------------------------------------------------------------- partitions

def test_partitions_cut_at_record_boundaries_and_cover_every_byte(tmp_path):
    conll = SAMPLE / "ner.conll"
    parts = plan([str(conll)], None, 2000)
    data = conll.read_bytes()
    assert parts[0].start == 0 and parts[-1].end == len(data) and len(parts) > 10
    for a, b in itertools.pairwise(parts):
        assert a.end == b.start and data[a.end - 2:a.end].endswith(b"\n") and data[:a.end].endswith(b"\n\n")
    jsonl = plan([str(SAMPLE / "ner.jsonl")], None, 1000)
    assert all((SAMPLE / "ner.jsonl").read_bytes()[p.start - 1:p.start] == b"\n" for p in jsonl[1:])


# ---------------------------------------------------------------- the extra is missing

def test_dask_without_the_extra_is_a_one_line_usage_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed -> ImportError
    for args in (["tag", "-m", "m", "--dask", "local:2", "in.jsonl", "-o", tmp_path / "out"],
                 ["eval", "-m", "m", "--dask", "tcp://localhost:8786", "in.jsonl"],
                 ["dedupe", "-m", "m", "--group", "--dask", "local:1", "in.jsonl"]):
        result = run(*args)
        assert result.exit_code == 2
        assert result.stderr == (f"seqtool {args[0]}: --dask needs the dask extra: pip install 'seqtool[dask]' "
                                 "(from a checkout of the repository: pip install '.[dask]')\n")
    assert not (tmp_path / "out").exists()


def test_dask_options_are_checked(tmp_path):
    result = run("tag", "-m", "m", "--dask", "nowhere", "in.jsonl")
    assert result.exit_code == 2 and "'nowhere': expected a scheduler address (tcp://HOST:PORT) or local:N" \
        in result.stderr
    result = run("tag", "-m", "m", "a.jsonl", "b.jsonl")
    assert (result.exit_code, result.stderr) == (
        2, "seqtool tag: several INPUTs go with --dask; for one process, cat them into one stream\n")
    result = run("dedupe", "-m", "m", "a.jsonl", "-o", tmp_path)
    assert (result.exit_code, result.stderr) == (
        2, "seqtool dedupe: -o DIR (part files) goes with --dask; without it the records go to stdout\n")


# ---------------------------------------------------------------- tag, eval, dedupe --group = one process

def test_tag_part_files_concatenate_to_the_single_process_output(cluster, models, small_parts, tmp_path):
    for name in ("ner.jsonl", "ner.conll"):
        ref = single("tag", "-m", models["tagger"], "--batch-size", 16, SAMPLE / name)
        assert ref.returncode == 0, ref.stderr
        out = tmp_path / name
        result = run("tag", "-m", models["tagger"], "--batch-size", 16, "--dask", cluster, SAMPLE / name, "-o", out)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == "" and result.stderr.startswith("seqtool tag: 400 records, 4610 tokens tagged (")
        assert len(os.listdir(out)) > 5
        assert concat(out) == ref.stdout
    # several inputs and a glob, to stdout: the files in order
    result = run("tag", "-m", models["tagger"], "--batch-size", 16, "--dask", cluster, SAMPLE / "ner.jsonl",
                 SAMPLE / "ner_d*.jsonl")
    dev = single("tag", "-m", models["tagger"], "--batch-size", 16, SAMPLE / "ner_dev.jsonl").stdout
    assert result.exit_code == 0 and result.stdout_bytes == concat(tmp_path / "ner.jsonl") + dev


def test_eval_reduces_counts_exactly(cluster, models, small_parts, tmp_path):
    ref = single("eval", "-m", models["tagger"], "--batch-size", 16, SAMPLE / "ner.jsonl")
    result = run("eval", "-m", models["tagger"], "--batch-size", 16, "--dask", cluster, SAMPLE / "ner.jsonl")
    assert result.exit_code == 0 and result.stdout_bytes == ref.stdout
    assert result.stderr_bytes == ref.stderr
    tagged = tmp_path / "tagged.jsonl"
    tagged.write_bytes(single("tag", "-m", models["tagger"], SAMPLE / "ner_dev.jsonl").stdout)
    ref = single("eval", "--pred", tagged)
    result = run("eval", "--pred", "--dask", cluster, tagged)
    assert (result.stdout_bytes, result.stderr_bytes) == (ref.stdout, ref.stderr)
    gaps = tmp_path / "gaps.jsonl"          # blank lines and a record without gold: the same line in the error
    rows = (SAMPLE / "ner.jsonl").read_text().splitlines()
    rows[300] = json.dumps({"tokens": ["x"]})
    gaps.write_text("\n\n".join(rows) + "\n")
    ref = single("eval", "-m", models["tagger"], "--batch-size", 16, gaps)
    result = run("eval", "-m", models["tagger"], "--batch-size", 16, "--dask", cluster, gaps)
    assert ref.returncode == 1 and b":601: record has no gold" in ref.stderr
    assert result.exit_code == 1 and result.stderr_bytes == ref.stderr
    ref = single("eval", "-m", models["siamese"], "--batch-size", 16, SAMPLE / "pairs.jsonl")
    result = run("eval", "-m", models["siamese"], "--batch-size", 16, "--dask", cluster, SAMPLE / "pairs.jsonl")
    assert (result.stdout_bytes, result.stderr_bytes) == (ref.stdout, ref.stderr)


def test_dedupe_group_equals_the_single_process_groups(cluster, models, small_parts, tmp_path):
    # more than two blocks of BLOCK rows: six block pairs, and groups that span blocks and partitions
    pairs = [json.loads(line) for line in (SAMPLE / "pairs.jsonl").read_text().splitlines()]
    texts = [p[q] for p in pairs for q in ("q1", "q2")]
    n = 2 * BLOCK + 300
    with open(tmp_path / "texts.jsonl", "w") as f:
        for i in range(n):
            rec = {"text": texts[i % len(texts)] + " " + "!" * (i // len(texts) % 3)}
            f.write(json.dumps({"id": f"t{i}", **rec} if i % 3 else rec) + "\n")
    ref = single("dedupe", "-m", models["siamese"], "--group", "--threshold", 0.95, tmp_path / "texts.jsonl")
    assert ref.returncode == 0, ref.stderr
    result = run("dedupe", "-m", models["siamese"], "--group", "--threshold", 0.95, "--dask", cluster,
                 tmp_path / "texts.jsonl", "-o", tmp_path / "groups")
    assert result.exit_code == 0, result.stderr
    assert concat(tmp_path / "groups") == ref.stdout
    rows = [json.loads(line) for line in ref.stdout.splitlines()]
    assert len(rows) == n and len({r["group"] for r in rows}) < n / 2       # the test means something
    by_index = {i: r for i, r in enumerate(rows)}
    members = [r for r in rows if r["duplicate_of"] is not None]
    assert members and all(r["score"] >= 0.95 and by_index[r["group"]]["duplicate_of"] is None for r in members)
    assert result.stderr.startswith(ref.stderr.decode().rstrip("\n"))


def test_errors_and_skipped_records_are_located_in_the_file(cluster, models, small_parts, tmp_path):
    lines = (SAMPLE / "ner.jsonl").read_text().splitlines(keepends=True)
    for k in (40, 151, 152, 333):
        lines[k] = '{"tokens": ["a"], "tags": ["O"]\n' if k != 152 else '{"text": ""}\n'
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines))
    ref = single("tag", "-m", models["tagger"], "--batch-size", 16, bad)
    result = run("tag", "-m", models["tagger"], "--batch-size", 16, "--dask", cluster, bad)
    assert result.exit_code == ref.returncode == 1
    assert result.stderr_bytes == ref.stderr                  # bad.jsonl:41: not valid JSON: ...
    ref = single("tag", "-m", models["tagger"], "--batch-size", 16, "--skip-invalid", bad)
    result = run("tag", "-m", models["tagger"], "--batch-size", 16, "--skip-invalid", "--dask", cluster, bad)
    assert result.exit_code == 0 and result.stdout_bytes == ref.stdout
    warning = ref.stderr.decode().splitlines()[0]
    # line 153, {"text": ""}, is not invalid: tag passes a record of no tokens through unpredicted
    assert warning.startswith("seqtool tag: skipped 3 invalid records (first: ") and f"{bad}:41: " in warning
    assert json.loads(result.stdout.splitlines()[150]) == {"text": "", "tokens": [], "tags": [], "entities": []}
    assert result.stderr.splitlines()[0] == warning


def test_a_pipeline_step_runs_on_the_cluster(cluster, models, tmp_path):
    (tmp_path / "p.yaml").write_text(textwrap.dedent(f"""
        steps:
          tag: {{model: {models['tagger']}, input: {SAMPLE / 'ner_dev.jsonl'}, output: tagged.jsonl,
                batch-size: 16, dask: "{cluster}"}}
          eval: {{pred: true, from: tag, output: scores.json, dask: "{cluster}"}}
        """))
    result = run("-q", "run", tmp_path / "p.yaml")
    assert result.exit_code == 0, result.stderr
    ref = single("tag", "-m", models["tagger"], "--batch-size", 16, SAMPLE / "ner_dev.jsonl").stdout
    assert (tmp_path / "tagged.jsonl").read_bytes() == ref
    assert json.loads((tmp_path / "scores.json").read_text())["records"] == 100
    (tmp_path / "bad.yaml").write_text(f"steps:\n  tag: {{model: m, input: {SAMPLE / 'ner.jsonl'}, output: o.jsonl,"
                                       f"\n        dask: 'local:0'}}\n")
    result = run("run", tmp_path / "bad.yaml")
    assert result.exit_code == 2
    assert result.stderr == (f"seqtool run: {tmp_path / 'bad.yaml'}:3: step tag: dask: expected a Dask address "
                             "(tcp://HOST:PORT or local:N), got 'local:0'\n")


# ---------------------------------------------------------------- a worker dies mid-task

# Run in every worker process (client.run(exec, ...)): the worker's second prediction, once a chunk has
# gone to its part file, kills the process if it can delete MARKER (so one worker dies, once). A worker
# that its nanny restarts runs without the hook.
KILL_HOOK = """
import os, signal
import seqtool.predict as predict
real, calls = predict.predict_chunk, [0]
def predict_then_die(loaded, chunk):
    out = real(loaded, chunk)
    calls[0] += 1
    if calls[0] >= 2:
        try:
            os.unlink(MARKER)
        except FileNotFoundError:
            return out
        os.kill(os.getpid(), signal.SIGKILL)
    return out
predict.predict_chunk = predict_then_die
"""


def test_a_worker_killed_mid_partition_leaves_whole_output(cluster, models, small_parts, tmp_path):
    import distributed

    marker = tmp_path / "kill-once"
    marker.write_text("")                                  # the first tag task to delete it kills its worker
    with distributed.Client(cluster) as client:
        client.run(exec, KILL_HOOK.replace("MARKER", repr(str(marker))), {})
    out = tmp_path / "out"
    result = run("tag", "-m", models["tagger"], "--batch-size", 16, "--dask", cluster, SAMPLE / "ner.jsonl",
                 "-o", out)
    assert result.exit_code == 0, result.stderr
    assert not marker.exists()                             # a worker did die
    ref = single("tag", "-m", models["tagger"], "--batch-size", 16, SAMPLE / "ner.jsonl").stdout
    assert concat(out) == ref                              # no torn, missing or duplicated record
