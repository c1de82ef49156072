"""What a pipeline says to a person (issue 13.18, 13.20): keys named as the YAML writes them, a missing corpus
pointing at SEQTOOL_DATA, and a run that ends with where its outputs went and what to try next.
Also 13.19: counts read "1 record", never "1 records" (seqtool/wording.py)."""
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.wording import plural

REPO = Path(__file__).resolve().parents[2]


def run(*args, input=None, env=None):
    return CliRunner(env=env).invoke(cli, [str(a) for a in args], input=input)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("n, text", [(0, "0 records"), (1, "1 record"), (2, "2 records")])
def test_plural(n, text):
    assert plural(n, "record") == text
    assert plural(n, "batch", "batches") == text.replace("records", "batches").replace("record", "batch")


def test_one_record_is_one_record_in_every_summary(tiny_models):
    one = '{"tokens": ["Bo", "ran"], "tags": ["B-PER", "O"]}\n'
    assert run("tag", "-m", tiny_models["ner"], input=one).stderr == "seqtool tag: 1 record, 2 tokens tagged\n"
    pair = '{"q1": "how do I", "q2": "what is"}\n'
    assert run("dedupe", "-m", tiny_models["siamese"], input=pair).stderr.startswith(
        "seqtool dedupe: 1 pair, ")
    group = run("dedupe", "-m", tiny_models["siamese"], "--group", input='{"text": "hello there"}\n')
    assert group.stderr.startswith("seqtool dedupe: 1 record in 1 group at threshold ")


@pytest.mark.parametrize("step, key, message", [
    ("tag: {model: m, input: in.jsonl, output-format: xml}", "output-format",
     "expected one of jsonl, conll, inline, fasttext, got 'xml'"),
    ("train: {input: missing.jsonl, output: m}", "input", "no such file: {dir}/missing.jsonl"),
    ("pad: {input: in.jsonl, batch_size: zero}", "batch_size", "expected an integer >= 1, got 'zero'"),
])
def test_errors_name_the_key_as_the_file_writes_it(tmp_path, step, key, message):
    write(tmp_path / "in.jsonl", '{"ids": [2]}\n')
    (tmp_path / "m").mkdir()
    p = write(tmp_path / "p.yaml", f"steps:\n  {step}\n")
    result = run("run", p, "--dry-run")
    assert result.exit_code == 2
    stage = step.split(":")[0]
    assert result.stderr == (f"seqtool run: {p}:2: step {stage}: {key}: "
                             f"{message.replace('{dir}', str(tmp_path))}\n")


def test_a_copied_pipeline_missing_its_corpora_names_seqtool_data(tmp_path):
    p = tmp_path / "sentiment.yaml"
    shutil.copy(REPO / "pipelines" / "sentiment.yaml", p)
    result = run("run", p, "--dry-run", env={"SEQTOOL_DATA": None})
    assert result.exit_code == 2
    missing = tmp_path.parent.parent / "shared" / "data" / "tweets" / "train.jsonl"    # root: .., then ../shared
    assert result.stderr == (f"seqtool run: {p}:19: step train: input: no such file: {missing}; this pipeline "
                             "reads its corpora from $SEQTOOL_DATA (not set), else ../shared/data beside the "
                             "repository: set SEQTOOL_DATA=/path/to/data\n")
    result = run("run", p, "--dry-run", env={"SEQTOOL_DATA": str(tmp_path / "corpora")})
    assert f"from $SEQTOOL_DATA (now {tmp_path / 'corpora'})" in result.stderr


def test_a_pipeline_without_seqtool_data_gets_no_such_hint(tmp_path):
    p = write(tmp_path / "p.yaml", "steps:\n  pad: {input: gone.jsonl, output: o.jsonl}\n")
    result = run("run", p)
    assert result.stderr == f"seqtool run: {p}:2: step pad: input: no such file: {tmp_path}/gone.jsonl\n"


def test_a_run_ends_with_its_outputs_and_a_next_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sample = REPO / "sample_data"
    p = write(tmp_path / "p.yaml", f"""
state_dir: work
steps:
  vocab: {{input: {sample}/tweets.jsonl, output: work/vocab.json}}
  pad: {{from: vocab, batch-size: 16}}
  train: {{from: pad, vocab: {{from: vocab}}, task: classifier, output: work/model, epochs: 1, embed: 4}}
  tag: {{model: {{from: train}}, input: {sample}/tweets.jsonl, output: work/tagged.jsonl}}
""")
    result = run("run", p)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-2] == ("  outputs: work/vocab.json (vocab), work/model (train), work/tagged.jsonl (tag)")
    assert lines[-1] == f"  next:    seqtool tag -m work/model --output-format inline {sample}/tweets.jsonl | head"
    again = run("run", p, "-q")
    assert again.stderr == ""
