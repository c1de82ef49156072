"""``seqtool run``: YAML pipelines (seqtool/pipeline*.py) through click's runner and as real processes.

Interpolation, every validation error with its exact message and line, skip-if-unchanged,
promotion, the lock, kill -9 in the middle of training, and failing steps. Models are tiny
(embed 8, hidden 8, 1-2 epochs on 60 sentences) so that the whole file takes seconds.
"""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqtool.model import modelio
from seqtool.cli import cli
from seqtool.pipeline.links import read_pipeline
from seqtool.pipeline.state import fingerprint

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def run(*args, quiet: bool = False):
    return CliRunner().invoke(cli, ["-q"] * quiet + ["run", *map(str, args)])


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def statuses(log: Path, since: int = 0) -> dict:
    """step -> its last status in the run log (from event number ``since`` on)."""
    return {e["step"]: e["status"] for e in events(log)[since:] if e["event"] == "step"}


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A small tagging corpus: 60 training and 20 dev sentences of the sample data."""
    lines = (SAMPLE / "ner.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(lines[:60]))
    dev = (SAMPLE / "ner_dev.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "dev.jsonl").write_text("".join(dev[:20]))
    return tmp_path


# ---------------------------------------------------------------- interpolation and --set

def test_vars_env_defaults_and_literal_dollar(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.jsonl").write_text('{"tokens": ["a"]}\n')
    p = write_yaml(tmp_path / "p.yaml", """
        vars:
          data: ${env.MY_DATA:-data}
          out: ${vars.data}/../out
          batch: 8
          name: cost$${x}
        steps:
          vocab:
            input: ${vars.data}/in.jsonl
            output: ${vars.out}/${vars.name}.json
          pad:
            from: vocab
            batch-size: ${vars.batch}
            output: ${env.OUT_DIR}/padded.jsonl
    """)
    pipe = read_pipeline(str(p), environ={"OUT_DIR": "/tmp/o"})
    vocab, pad = pipe.steps
    assert vocab.options["input"] == str(tmp_path / "data" / "in.jsonl")
    assert vocab.options["output"] == str(tmp_path / "out" / "cost${x}.json")
    assert pad.options["batch_size"] == 8 and pad.sink == "/tmp/o/padded.jsonl"
    assert pad.options["input"] == vocab.sink == str(tmp_path / "p.vocab.jsonl")
    pipe = read_pipeline(str(p), environ={"OUT_DIR": "/tmp/o", "MY_DATA": str(tmp_path / "data")})
    assert pipe.steps[0].options["output"] == str(tmp_path / "out" / "cost${x}.json")


def test_set_overrides_vars_with_yaml_types(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"tokens": ["a"], "tags": ["O"]}\n')
    p = write_yaml(tmp_path / "p.yaml", """
        vars: {epochs: 2, lr: 0.1, cell: lstm, bi: true, model: m}
        steps:
          train:
            input: in.jsonl
            output: ${vars.model}
            epochs: ${vars.epochs}
            lr: ${vars.lr}
            cell: ${vars.cell}
            bidirectional: ${vars.bi}
    """)
    opts = read_pipeline(str(p)).steps[0].options
    assert (opts["epochs"], opts["lr"], opts["cell"], opts["bidirectional"]) == (2, 0.1, "lstm", True)
    opts = read_pipeline(str(p), ["epochs=5", "lr=1e-3", "vars.cell=gru", "bi=false", "model=x/y"]).steps[0].options
    assert (opts["epochs"], opts["lr"], opts["cell"], opts["bidirectional"]) == (5, 0.001, "gru", False)
    assert opts["output"] == str(tmp_path / "x" / "y")


def test_set_errors(tmp_path):
    (tmp_path / "in.jsonl").write_text("{}\n")
    p = write_yaml(tmp_path / "p.yaml", """
        vars: {epochs: 2}
        steps:
          train: {input: in.jsonl, output: m, epochs: "${vars.epochs}"}
    """)
    result = run(p, "--set", "epoch=3")
    assert (result.exit_code, result.stderr) == (
        2, "seqtool run: --set epoch: no such variable in vars (defined: epochs)\n")
    result = run(p, "--set", "epochs")
    assert (result.exit_code, result.stderr) == (2, "seqtool run: --set expects NAME=VALUE, got 'epochs'\n")
    result = run(p, "--set", "epochs=many")
    assert (result.exit_code, result.stderr) == (
        2, f"seqtool run: {p}:3: step train: epochs: expected an integer >= 1, got 'many'\n")


def test_yaml_anchors_under_x_keys_and_merge_overrides(tmp_path):
    (tmp_path / "in.jsonl").write_text("{}\n")
    p = write_yaml(tmp_path / "p.yaml", """
        x-small: &small
          embed: 8
          hidden: 8
        steps:
          train:
            <<: *small
            hidden: 4
            input: in.jsonl
            output: m
    """)
    step = read_pipeline(str(p)).steps[0]
    assert (step.options["embed"], step.options["hidden"]) == (8, 4)
    assert (step.lines["embed"], step.lines["hidden"]) == (2, 7)


# ---------------------------------------------------------------- validation: one message, with the line

CASES = {
    "unknown top-level key": ("""
        steps:
          vocab: {input: in.jsonl, output: v.json}
        step: 1
        """, "3: unknown key 'step' (did you mean 'steps'?); expected one of: vars, root, state_dir, log, steps"),
    "unknown stage": ("""
        steps:
          vocab:
            stage: vocabb
            input: in.jsonl
        """, "3: step vocab: unknown stage 'vocabb' (did you mean 'vocab'?); expected one of: vocab, pad, train, "
             "tag, eval, dedupe, report, promote"),
    "a name that is no stage": ("""
        steps:
          tagger:
            input: in.jsonl
        """, "2: step tagger: give stage: STAGE (one of: vocab, pad, train, tag, eval, dedupe, report, promote); a step's "
             "name is its stage only when it is one of them"),
    "unknown option": ("""
        steps:
          vocab:
            input: in.jsonl
            output: v.json
            min-cout: 2
        """, "5: step vocab: unknown option 'min_cout' for seqtool vocab (did you mean 'min_count'?)"),
    "config is not for pipelines": ("""
        steps:
          train:
            input: in.jsonl
            output: m
            config: c.yaml
        """, "5: step train: unknown option 'config' for seqtool train: write the options in the step itself"),
    "wrong type": ("""
        steps:
          train:
            input: in.jsonl
            output: m
            epochs: two
        """, "5: step train: epochs: expected an integer >= 1, got 'two'"),
    "out of range": ("""
        steps:
          train:
            input: in.jsonl
            output: m
            dropout: 1.5
        """, "5: step train: dropout: expected a number >= 0 and < 1, got 1.5"),
    "not a choice": ("""
        steps:
          train:
            input: in.jsonl
            output: m
            cell: lstn
        """, "5: step train: cell: expected one of rnn, gru, lstm, none, got 'lstn'"),
    "not a boolean": ("""
        steps:
          vocab:
            input: in.jsonl
            output: v.json
            lowercase: 1
        """, "5: step vocab: lowercase: expected true or false, got 1"),
    "missing input file": ("""
        steps:
          vocab:
            input: nope.jsonl
            output: v.json
        """, "3: step vocab: input: no such file: {dir}/nope.jsonl"),
    "missing model directory": ("""
        steps:
          tag:
            model: models/none
            input: in.jsonl
            output: t.jsonl
        """, "3: step tag: model: no such model directory: {dir}/models/none"),
    "undefined step": ("""
        steps:
          vocab:
            input: in.jsonl
            output: v.json
          pad:
            from: vocb
            output: p.jsonl
        """, "6: step pad: from: no step named 'vocb' before this one (did you mean 'vocab'?)"),
    "a later step": ("""
        steps:
          pad:
            input: {from: vocab}
            output: p.jsonl
          vocab:
            input: in.jsonl
            output: v.json
        """, "3: step pad: input: from: step vocab comes later: a step reads from the steps before it"),
    "a step that makes no records": ("""
        steps:
          train:
            input: in.jsonl
            output: m
          pad:
            from: train
            output: p.jsonl
        """, "6: step pad: from: train is a train step, which makes no records (records come from vocab, "
             "pad, tag and dedupe steps)"),
    "undefined variable": ("""
        vars:
          out: work
        steps:
          vocab:
            input: in.jsonl
            output: ${vars.outt}/v.json
        """, "6: undefined variable ${vars.outt} (defined: out)"),
    "unset environment variable": ("""
        steps:
          vocab:
            input: ${env.SEQTOOL_TEST_UNSET}/in.jsonl
            output: v.json
        """, "3: environment variable SEQTOOL_TEST_UNSET is not set (give a default: ${env.SEQTOOL_TEST_UNSET:-value})"),
    "variables in a cycle": ("""
        vars:
          a: ${vars.b}
          b: x${vars.a}
        steps:
          vocab: {input: in.jsonl, output: v.json}
        """, "2: variable a refers to itself (a -> b -> a)"),
    "a key given twice": ("""
        steps:
          vocab:
            input: in.jsonl
            input: in.jsonl
        """, "4: 'input' is given twice (first on line 3)"),
    "not YAML": ("""
        steps:
          vocab: [input
        """, "3: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    "no Python objects": ("""
        steps: !!python/object/apply:os.system ["echo hi"]
        """, "1: not valid YAML: could not determine a constructor for the tag "
             "'tag:yaml.org,2002:python/object/apply:os.system'"),
    "records that go nowhere": ("""
        steps:
          vocab:
            input: in.jsonl
            output: v.json
          pad:
            from: vocab
        """, "5: step pad: its records go nowhere: give output: FILE, or read them in a later step with from: pad"),
    "vocab without output or vocab": ("""
        steps:
          vocab:
            input: in.jsonl
        """, "2: step vocab: give output: FILE to build a vocabulary, or vocab: FILE to apply a saved one "
             "(one of them)"),
    "stdin": ("""
        steps:
          vocab:
            input: "-"
            output: v.json
        """, "3: step vocab: input: a pipeline reads and writes files, not - (stdin/stdout)"),
    "two steps write one file": ("""
        steps:
          vocab:
            input: in.jsonl
            output: v.json
          pad:
            from: vocab
            output: v.json
        """, "5: step pad: writes {dir}/v.json, which step vocab writes too"),
}


@pytest.mark.parametrize("name", CASES)
def test_validation_errors_name_the_line_and_run_nothing(tmp_path, name):
    text, message = CASES[name]
    (tmp_path / "in.jsonl").write_text('{"tokens": ["a"], "tags": ["O"]}\n')
    p = write_yaml(tmp_path / "p.yaml", text)
    result = run(p)
    line, _, message = message.replace("{dir}", str(tmp_path)).partition(": ")
    assert result.stderr == f"seqtool run: {p}:{line}: {message}\n"
    assert result.exit_code == 2 and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl", "p.yaml"]   # no state, log, lock or output


def test_unknown_step_in_from_or_only(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"tokens": ["a"]}\n')
    p = write_yaml(tmp_path / "p.yaml", "steps:\n  vocab: {input: in.jsonl, output: v.json}\n")
    result = run(p, "--only", "pad")
    assert (result.exit_code, result.stderr) == (2, "seqtool run: --only pad: no such step (steps: vocab)\n")
    result = run(p, "--from", "vocab", "--only", "vocab")
    assert (result.exit_code, result.stderr) == (2, "seqtool run: give --from or --only, not both\n")


# ---------------------------------------------------------------- incremental runs

VOCAB_PAD = """
    state_dir: state
    vars: {batch: 4}
    steps:
      vocab:
        input: train.jsonl
        output: out/vocab.json
      pad:
        from: vocab
        batch-size: ${vars.batch}
        output: out/padded.jsonl
"""


def test_unchanged_steps_are_skipped_and_changes_rerun_what_they_touch(corpus, monkeypatch):
    p = write_yaml(corpus / "p.yaml", VOCAB_PAD)
    log = corpus / "state" / "p.log.jsonl"

    def again(*args) -> dict:
        n = len(events(log))
        result = run(p, *args)
        assert result.exit_code == 0, result.stderr
        return statuses(log, n)

    assert again() == {"vocab": "ok", "pad": "ok"}
    assert again() == {"vocab": "skipped", "pad": "skipped"}
    assert again("--set", "batch=8") == {"vocab": "skipped", "pad": "ok"}          # an option
    with open(corpus / "train.jsonl", "a") as f:                                    # the input's content
        f.write('{"tokens": ["New"], "tags": ["O"]}\n')
    assert again("--set", "batch=8") == {"vocab": "ok", "pad": "ok"}
    (corpus / "out" / "padded.jsonl").write_text("")                               # an output touched
    assert again("--set", "batch=8") == {"vocab": "skipped", "pad": "ok"}
    monkeypatch.setattr("seqtool.pipeline.state.__version__", "99.0")              # another seqtool
    assert again("--set", "batch=8") == {"vocab": "ok", "pad": "ok"}
    assert again("--set", "batch=8", "--force") == {"vocab": "ok", "pad": "ok"}
    assert again("--set", "batch=8", "--only", "pad", "--force") == {"pad": "ok"}
    assert json.loads((corpus / "out" / "padded.jsonl").read_text().splitlines()[-1])["batch"] == 7


def test_dry_run_shows_the_commands_and_runs_nothing(corpus):
    p = write_yaml(corpus / "p.yaml", VOCAB_PAD)
    result = run(p, "--dry-run")
    assert result.exit_code == 0
    assert result.stdout == (f"vocab: run (never ran): seqtool vocab --output {corpus}/out/vocab.json "
                             f"{corpus}/train.jsonl > {corpus}/state/p.vocab.jsonl\n"
                             f"pad: run (after vocab): seqtool pad --batch-size 4 {corpus}/state/p.vocab.jsonl "
                             f"> {corpus}/out/padded.jsonl\n")
    assert not (corpus / "state").exists() and not (corpus / "out").exists()
    assert run(p).exit_code == 0
    assert run(p, "--dry-run", "--from", "pad").stdout.startswith("vocab: not selected\npad: skip (unchanged): ")


# ---------------------------------------------------------------- promotion

def fake_model(path: Path, f1: float | None) -> Path:
    best = {} if f1 is None else {"f1": f1, "accuracy": 0.5}
    modelio.save_model(path, {"task": "tagger"}, {"w": np.full(3, f1 or 0.0)}, {"words": []},
                       {"best_dev": best})
    return path


def promoted_f1(path: Path) -> float:
    return modelio.load_model(path)[3]["best_dev"]["f1"]


PROMOTE = """
    steps:
      promote:
        model: new
        to: models/ner
        metric: f1
        min_delta: 0.01
"""


def test_promotion_happens_only_on_improvement_and_keeps_prev(tmp_path):
    p = write_yaml(tmp_path / "p.yaml", PROMOTE)
    log, ner = tmp_path / "p.log.jsonl", tmp_path / "models" / "ner"

    def promote(f1: float) -> str:
        fake_model(tmp_path / "new", f1)
        result = run(p)
        assert result.exit_code == 0, result.stderr
        return statuses(log)["promote"]

    assert promote(0.50) == "promoted" and promoted_f1(ner) == 0.50        # nothing there before
    assert not (tmp_path / "models" / "ner.prev").exists()
    assert promote(0.40) == "kept" and promoted_f1(ner) == 0.50            # worse
    assert promote(0.505) == "kept" and promoted_f1(ner) == 0.50           # better by less than min_delta
    assert promote(0.60) == "promoted" and promoted_f1(ner) == 0.60
    assert promoted_f1(tmp_path / "models" / "ner.prev") == 0.50
    assert statuses(log) == {"promote": "promoted"}
    result = run(p)                                                         # the same candidate again
    assert result.exit_code == 0 and statuses(log)["promote"] == "skipped"
    last = [e for e in events(log) if e.get("status") in ("promoted", "kept")][-1]
    assert last["status"] == "promoted" and last["metrics"] == {
        "metric": "f1", "new": 0.6, "current": 0.5, "min_delta": 0.01, "model": str(tmp_path / "new"), "to": str(ner)}
    assert sorted(os.listdir(tmp_path / "models")) == ["ner", "ner.prev"]   # no temporary leftovers


def test_promotion_with_dev_scores_both_models_on_that_file(tmp_path):
    """A stored best_dev can flatter a model (another dev set, another day): with dev:, both are scored now."""
    from seqtool.stages.train import run_train

    rng = np.random.default_rng(0)

    def records(n):
        out = []
        for _ in range(n):
            toks = [str(t) for t in rng.choice(["a", "b", "the", "d", "c"], size=rng.integers(3, 9))]
            out.append({"tokens": toks, "tags": ["B-X" if t == "d" and i and toks[i - 1] == "the" else "O"
                                                 for i, t in enumerate(toks)]})
        return out

    for name, recs in (("train", records(600)), ("dev", records(100))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    opts = dict(dev=str(tmp_path / "dev.jsonl"), hidden=32, embed=16, progress=False, crf=False, char=False,
                shape_dim=0, dropout=0.0, word_dropout=0.0)
    run_train(str(tmp_path / "train.jsonl"), output=str(tmp_path / "weak"), epochs=1, lr=1e-4, **opts)
    run_train(str(tmp_path / "train.jsonl"), output=str(tmp_path / "new"), epochs=12, lr=0.01, **opts)
    config, weights, vocab, metrics = modelio.load_model(tmp_path / "weak")
    modelio.save_model(tmp_path / "models" / "ner", config, weights, vocab,
                       {**metrics, "best_dev": {**metrics["best_dev"], "f1": 0.99}})      # a flattering record
    p = write_yaml(tmp_path / "p.yaml", PROMOTE)
    assert run(p).exit_code == 0 and statuses(tmp_path / "p.log.jsonl")["promote"] == "kept"   # 0.99 on record
    p = write_yaml(tmp_path / "p.yaml", PROMOTE + "        dev: dev.jsonl\n")
    result = run(p)
    assert result.exit_code == 0, result.stderr
    last = [e for e in events(tmp_path / "p.log.jsonl") if e.get("status") in ("promoted", "kept")][-1]
    assert last["status"] == "promoted" and last["metrics"]["dev"] == str(tmp_path / "dev.jsonl")
    assert last["metrics"]["new"] > 0.9 > 0.5 > last["metrics"]["current"]
    promoted, new = modelio.load_model(tmp_path / "models" / "ner")[1], modelio.load_model(tmp_path / "new")[1]
    assert promoted.keys() == new.keys() and all(np.array_equal(promoted[k], new[k]) for k in new)
    assert run(p).exit_code == 0 and statuses(tmp_path / "p.log.jsonl")["promote"] == "skipped"   # dev unchanged
    with open(tmp_path / "dev.jsonl", "a") as f:
        f.write(json.dumps(records(1)[0]) + "\n")
    assert run(p).exit_code == 0 and statuses(tmp_path / "p.log.jsonl")["promote"] == "kept"      # dev changed


def test_promotion_needs_the_metric(tmp_path):
    p = write_yaml(tmp_path / "p.yaml", PROMOTE.replace("metric: f1", "metric: auc"))
    fake_model(tmp_path / "new", 0.5)
    result = run(p)
    assert result.exit_code == 1
    assert result.stderr == (f"seqtool run: step promote failed: {tmp_path}/new/metrics.json: best_dev has no "
                             "'auc' score (it has: f1, accuracy)\n")
    fake_model(tmp_path / "new", None)
    result = run(p)
    assert result.stderr == (f"seqtool run: step promote failed: {tmp_path}/new/metrics.json: no best_dev scores: "
                             "the model was trained without --dev, so it cannot be compared\n")


def test_the_promoted_model_is_readable_at_every_instant(tmp_path):
    """A reader loading models/ner in a loop while promotions swap it never fails or mixes two models."""
    p = write_yaml(tmp_path / "p.yaml", PROMOTE.replace("min_delta: 0.01", "min_delta: 0.0"))
    ner, problems, stop = tmp_path / "models" / "ner", [], threading.Event()
    fake_model(tmp_path / "new", 0.01)
    assert run(p).exit_code == 0

    def reader():
        while not stop.is_set():
            try:
                _, weights, _, metrics = modelio.load_model(ner)
                if weights["w"][0] != metrics["best_dev"]["f1"]:
                    problems.append("mixed")
            except Exception as e:  # noqa: BLE001 -- any failure to read is the bug this test looks for
                problems.append(repr(e))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(2, 12):
            fake_model(tmp_path / "new", i / 100)
            assert run(p).exit_code == 0
    finally:
        stop.set()
        thread.join()
    assert problems == [] and promoted_f1(ner) == 0.11 and promoted_f1(tmp_path / "models" / "ner.prev") == 0.10


# ---------------------------------------------------------------- the lock

def test_a_second_run_exits_3_naming_the_holder_or_waits(tmp_path):
    p = write_yaml(tmp_path / "p.yaml", PROMOTE)
    fake_model(tmp_path / "new", 0.5)
    lock = tmp_path / "p.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    try:
        result = run(p)
        assert result.exit_code == 3
        assert result.stderr == (f"seqtool run: {lock}: another run of this pipeline holds the lock (pid 4242); "
                                 "try again later, or use --wait\n")
        assert events(tmp_path / "p.log.jsonl")[-1]["status"] == "locked"
        assert not (tmp_path / "models").exists()
        threading.Timer(0.5, os.close, [fd]).start()
        t0 = time.monotonic()
        result = run(p, "--wait")
    finally:
        time.sleep(0.6)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("seqtool run: waiting for the run with pid 4242 to finish\n")
    assert time.monotonic() - t0 >= 0.4 and promoted_f1(tmp_path / "models" / "ner") == 0.5
    assert lock.read_text() == f"{os.getpid()}\n"


# ---------------------------------------------------------------- failures

def test_a_failing_step_stops_the_run_and_is_named(corpus):
    (corpus / "bad.jsonl").write_text('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [\n')
    p = write_yaml(corpus / "p.yaml", """
        steps:
          vocab:
            input: train.jsonl
            output: v.json
          apply:
            stage: vocab
            vocab: {from: vocab}
            input: bad.jsonl
            stdout: bad.ids.jsonl
          pad:
            from: apply
            output: padded.jsonl
    """)
    result = run(p, quiet=True)
    assert result.exit_code == 1
    assert result.stderr == (f"seqtool run: step apply failed: {corpus}/bad.jsonl:2: not valid JSON: "
                             "Expecting value at column 13\n")
    log = corpus / "p.log.jsonl"
    assert statuses(log) == {"vocab": "ok", "apply": "failed"}     # pad never started
    assert events(log)[-1] | {"time": 0, "seconds": 0} == {"time": 0, "pid": os.getpid(), "event": "run",
                                                           "status": "failed", "step": "apply", "exit": 1,
                                                           "seconds": 0}
    assert not (corpus / "bad.ids.jsonl").exists() and not (corpus / "padded.jsonl").exists()
    assert [f for f in os.listdir(corpus) if ".tmp-" in f] == []
    n = len(events(log))
    result = run(p)                                                  # vocab is done; apply fails again
    assert result.exit_code == 1 and statuses(log, n) == {"vocab": "skipped", "apply": "failed"}


def test_a_stage_usage_error_is_exit_2(corpus):
    p = write_yaml(corpus / "p.yaml", """
        steps:
          vocab: {input: train.jsonl, output: v.json}
          pad: {from: vocab, output: padded.jsonl}
          train: {from: pad, output: m, epochs: 1}
    """)
    result = run(p, quiet=True)
    assert result.exit_code == 2
    assert result.stderr == ("seqtool run: step train failed: the input already has ids (vocab/pad output): "
                                  "give the --vocab it was made with\n")


# ---------------------------------------------------------------- real processes: kill -9, lock, recovery

RETRAIN = """
    state_dir: state
    vars: {epochs: 1, patience: 5}
    steps:
      train:
        input: train.jsonl
        dev: dev.jsonl
        output: work/candidate
        embed: 8
        hidden: 8
        epochs: ${vars.epochs}
        patience: ${vars.patience}
      promote:
        model: {from: train}
        to: models/ner
        metric: accuracy
      tag:
        model: {from: promote}
        input: dev.jsonl
        output: work/tagged.jsonl
"""


def start(p: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqtool", "-q", "run", str(p), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=p.parent)


def wait_for_training(proc: subprocess.Popen, corpus: Path, timeout: float = 120) -> None:
    """Until the process is in the middle of training: its first epoch's checkpoint is written."""
    deadline = time.monotonic() + timeout
    while not (corpus / "work" / "candidate.ckpt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)


def test_kill_9_while_training_keeps_the_promoted_model_and_the_next_run_recovers(corpus):
    p = write_yaml(corpus / "p.yaml", RETRAIN)
    log, ner = corpus / "state" / "p.log.jsonl", corpus / "models" / "ner"
    first = run(p)
    assert first.exit_code == 0, first.stderr
    before = fingerprint(str(ner))
    proc = start(p, "--set", "epochs=10000", "--set", "patience=0")
    try:
        wait_for_training(proc, corpus)
        second = run(p)                                           # meanwhile: the lock is taken
        assert second.exit_code == 3
        assert f"another run of this pipeline holds the lock (pid {proc.pid})" in second.stderr
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert fingerprint(str(ner)) == before and modelio.load_model(ner)[3]["best_dev"]
    runs = [e for e in events(log) if e["pid"] == proc.pid]
    assert [e.get("status") for e in runs] == ["started", "started"]        # the run, then train: no end
    n = len(events(log))
    again = run(p, "--set", "epochs=2")
    assert again.exit_code == 0, again.stderr
    promoted = statuses(log, n)["promote"] == "promoted"
    assert statuses(log, n) == {"train": "ok", "promote": "promoted" if promoted else "kept",
                                "tag": "ok" if promoted else "skipped"}   # tag reruns only for a new model
    assert modelio.load_model(ner)[3]["best_dev"]
    assert [f for f in os.listdir(corpus / "work") if f.startswith(".")] == []
    assert [f for f in os.listdir(corpus / "models") if f.startswith(".")] == []


def test_sigterm_interrupts_the_run_with_exit_130(corpus):
    p = write_yaml(corpus / "p.yaml", RETRAIN)
    log = corpus / "state" / "p.log.jsonl"
    proc = start(p, "--set", "epochs=10000", "--set", "patience=0")
    try:
        wait_for_training(proc, corpus)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    # train's own message (checkpoint saved) or, when the signal lands inside a kernel, the signal's name
    assert err.decode().startswith("seqtool run: step train interrupted: "), err
    assert (corpus / "work" / "candidate.ckpt").is_dir()                # resumable (resume: true)
    assert statuses(log) == {"train": "interrupted"}
    assert events(log)[-1]["status"] == "interrupted" and events(log)[-1]["exit"] == 130
    assert not (corpus / "models").exists()


# ---------------------------------------------------------------- the shipped pipelines

def test_quickstart_runs_from_a_fresh_directory(tmp_path):
    """The README's main job, copied away from the repository: paths resolve against the file."""
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(REPO / "pipelines" / "quickstart.yaml", tmp_path / "pipelines")
    result = CliRunner().invoke(cli, ["-q", "run", str(tmp_path / "pipelines" / "quickstart.yaml"),
                                      "--set", "epochs=1", "--set", "hidden=8"])
    assert (result.exit_code, result.stderr) == (0, "")
    out = tmp_path / "work" / "quickstart"
    assert json.loads((out / "eval.json").read_text())["records"] == 100
    assert len((out / "tagged.jsonl").read_text().splitlines()) == 100
    assert statuses(out / "quickstart.log.jsonl") == dict.fromkeys(["vocab", "pad", "train", "eval", "tag", "report"],
                                                                   "ok")
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("name", sorted(f.name for f in (REPO / "pipelines").glob("*.yaml")))
def test_shipped_pipelines_are_valid(name, shared_data):
    result = run(REPO / "pipelines" / name, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"seqtool run: {REPO}/pipelines/{name}: valid; nothing was run (--dry-run)\n"


def test_the_readme_example_is_a_valid_pipeline(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Pipelines"):readme.index("## Record contract")]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml\n"))]
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    (tmp_path / "pipelines").mkdir()
    p = write_yaml(tmp_path / "pipelines" / "example.yaml", example)
    steps = read_pipeline(str(p)).steps
    assert [s.name for s in steps] == ["vocab", "pad", "train", "tag"]
    assert steps[2].options["epochs"] == 6 and steps[2].options["train"] == steps[1].sink


@pytest.mark.parametrize("name", ["ner-conll.yaml", "dedupe.yaml"])
def test_example_pipelines_take_vectors_from_seqtool_vectors_when_set(name):
    path = str(Path(__file__).resolve().parents[2] / "pipelines" / name)
    train = {s.name: s for s in read_pipeline(path, environ={}).steps}["train"]
    assert "embeddings" not in train.options
    train = {s.name: s for s in read_pipeline(path, environ={"SEQTOOL_VECTORS": "/v/glove.txt"}).steps}["train"]
    assert train.options["embeddings"] == "/v/glove.txt"
