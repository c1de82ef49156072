"""Issue 13.1: an empty input (or blank lines only) gives empty output and exit 0 in every streaming stage;
building a vocabulary or training on nothing stays a one-line error."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli

REPO = Path(__file__).resolve().parents[2]
EMPTY = {"nothing": b"", "blank lines": b"\n\n  \n\t\n"}


def run(*args, input=b""):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def streaming(models: dict, vocab: str) -> dict:
    """Every streaming stage, by name: its arguments."""
    return {
        "vocab --vocab": ["vocab", "--vocab", vocab],
        "pad": ["pad"],
        "tag": ["tag", "-m", models["ner"]],
        "tag classifier": ["tag", "-m", models["clf"]],
        "tag --output-format conll": ["tag", "-m", models["ner"], "--output-format", "conll"],
        "tag --output-format inline": ["tag", "-m", models["ner"], "--output-format", "inline"],
        "dedupe pairs": ["dedupe", "-m", models["siamese"]],
        "dedupe --group": ["dedupe", "-m", models["siamese"], "--group"],
        "dedupe --top-k": ["dedupe", "-m", models["siamese"], "--top-k", "3"],
    }


STAGES = ["vocab --vocab", "pad", "tag", "tag classifier", "tag --output-format conll",
          "tag --output-format inline", "dedupe pairs", "dedupe --group", "dedupe --top-k"]


# pad reads only the JSONL output of vocab; in --format text a blank line is a record of its own (13.6)
CASES = [(stage, fmt, content) for stage in STAGES for fmt in ("jsonl", "conll", "text") for content in EMPTY
         if (stage != "pad" or fmt == "jsonl") and (fmt != "text" or content == "nothing")]


@pytest.mark.parametrize("stage,fmt,content", CASES)
def test_a_streaming_stage_on_empty_input_writes_nothing_and_succeeds(tiny_models, stage, fmt, content):
    args = streaming(tiny_models, os.path.join(tiny_models["ner"], "vocab.json"))[stage]
    if stage != "pad":
        args = [*args, "--format", fmt]
    result = run(*args, input=EMPTY[content])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "0 records" in result.stderr or "0 pairs" in result.stderr


@pytest.mark.parametrize("content", EMPTY)
@pytest.mark.parametrize("model", ["ner", "clf", "siamese"])
def test_eval_of_nothing_says_so_and_succeeds(tiny_models, model, content):
    """An empty eval scores nothing: JSON a script can read, exit 0, and a warning that -q keeps."""
    task = {"ner": "tagger", "clf": "classifier", "siamese": "siamese"}[model]
    result = run("eval", "-m", tiny_models[model], "-q", input=EMPTY[content])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"task": task, "records": 0}
    assert result.stderr == "seqtool eval: no records: nothing to score\n"


def test_eval_pred_of_nothing_has_no_task():
    result = run("eval", "--pred", input=b"")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"task": None, "records": 0}
    assert result.stderr == "seqtool eval: no records: nothing to score\nseqtool eval: 0 records\n"


@pytest.mark.parametrize("args, message", [
    (["vocab", "-o", "{tmp}/v.json"], "seqtool vocab: <stdin>: no records\n"),
    (["train", "-o", "{tmp}/m", "--epochs", "1"], "seqtool train: <stdin>: no records\n"),
])
def test_building_a_vocabulary_or_training_on_nothing_is_a_one_line_error(tmp_path, args, message):
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args], input=b"\n\n")
    assert result.exit_code == 1
    assert result.stderr == message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [["tag", "-m", "{ner}"], ["dedupe", "-m", "{siamese}", "--group"],
                                  ["eval", "-m", "{ner}"]])
def test_a_real_process_with_stdin_from_dev_null(tiny_models, args):
    """`seqtool tag -m M < /dev/null`, as a user types it: no traceback, exit 0."""
    args = [a.format(**tiny_models) for a in args]
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.run([sys.executable, "-m", "seqtool", *args], stdin=devnull, capture_output=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert proc.stdout in (b"", b'{"task": "tagger", "records": 0}\n')
