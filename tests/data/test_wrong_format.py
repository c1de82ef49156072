"""What stages do with input in a format other than the one they read (issue 13, points 4, 6, 7), with
plain text, fastText output and reading options through the stages, train and a pipeline."""
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.stages.train import run_train

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny tagger and a tiny classifier (1 epoch, 8 units): predictions need not be good, only made."""
    root = tmp_path_factory.mktemp("models")
    ner = root / "ner.jsonl"
    ner.write_text("".join((SAMPLE / "ner.jsonl").read_text().splitlines(keepends=True)[:40]))
    tweets = root / "tweets.jsonl"
    tweets.write_text("".join((SAMPLE / "tweets.jsonl").read_text().splitlines(keepends=True)[:40]))
    opts = {"epochs": 1, "hidden": 8, "embed": 8, "progress": False, "threads": 2}
    run_train(str(ner), output=str(root / "tagger"), char=False, **opts)
    run_train(str(tweets), output=str(root / "classifier"), task="classifier", **opts)
    return {"tagger": root / "tagger", "classifier": root / "classifier", "ner": ner}


# ---------------------------------------------------------------- 13.4: a wrong --format is named

def test_jsonl_read_as_conll_names_jsonl(models):
    result = run("tag", "-m", models["tagger"], "--format", "conll", models["ner"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"seqtool tag: {models['ner']}:1: looks like JSONL, not CoNLL columns: "
                             "drop --format conll\n")


def test_train_on_jsonl_as_conll_stops_before_training(models, tmp_path):
    result = run("train", "--format", "conll", "--train", models["ner"], "-o", tmp_path / "m")
    assert result.exit_code == 2
    assert result.stderr.endswith("looks like JSONL, not CoNLL columns: drop --format conll\n")
    assert not (tmp_path / "m").exists()


def test_a_jsonl_file_named_conll_is_named_too(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text('{"tokens": ["a"], "tags": ["O"]}\n')
    result = run("vocab", "-o", tmp_path / "v.json", path)
    assert result.stderr == f"seqtool vocab: {path}:1: looks like JSONL, not CoNLL columns: use --format jsonl\n"


def test_text_read_as_conll_is_named(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("John lives in Paris\nMary went home today\n")
    result = run("vocab", "-o", tmp_path / "v.json", "--format", "conll", path)
    assert result.exit_code == 2
    assert result.stderr == (f"seqtool vocab: {path}:1: the tag column holds no tag ('Paris', 'today', ...): for "
                             "plain text use --format text; for CoNLL without tags, --tag-column 0\n")
    path.write_text("John lives in Paris\nMary too\n")
    result = run("vocab", "-o", tmp_path / "v.json", "--format", "conll", path)
    assert result.stderr == (f"seqtool vocab: {path}:1: lines of 2 to 4 columns: looks like plain text, not CoNLL "
                             "columns: use --format text\n")


@pytest.mark.parametrize("first_line, hint", [
    (b"EU NNP B-ORG\n", "not JSON but looks like CoNLL columns (token ... tag): use --format conll"),
    (b"1\tHow old ?\tWhat age ?\t7\n", "not JSON but tab-separated: use --format tsv (with --columns, or "
                                       "--format conll for CoNLL columns)"),
    (b"id,text,label\n", "not JSON but looks like a CSV header or row: use --format csv"),
    (b"__label__pos good\n", "not JSON but fastText lines (__label__...): use --format fasttext"),
])
def test_jsonl_reader_names_the_format_of_a_first_line_that_is_not_json(tmp_path, first_line, hint):
    result = run("vocab", "-o", tmp_path / "v.json", "--skip-invalid", input=first_line + b'{"text": "a"}\n')
    assert result.exit_code == 2       # not a bad record to skip: the whole input is in another format
    assert result.stderr == f"seqtool vocab: <stdin>:1: {hint}\n"


def test_conll_with_a_brace_token_is_still_conll(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("{ O\nx O\n")
    assert run("convert", path, "--to", "jsonl").stdout == '{"tokens":["{","x"],"tags":["O","O"]}\n'


# ---------------------------------------------------------------- 13.7: plain text on stdin

def test_plain_text_on_stdin_says_use_format_text(models):
    proc = subprocess.run([sys.executable, "-m", "seqtool", "tag", "-m", str(models["tagger"])],
                          input=b"John lives in Paris\n", capture_output=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (proc.returncode, proc.stdout) == (2, b"")
    assert proc.stderr == b"seqtool tag: <stdin>:1: is not JSON; for plain text use --format text\n"


# ---------------------------------------------------------------- 13.6: one output line per input line

def test_text_blank_lines_give_one_output_line_each(models):
    result = run("tag", "-m", models["tagger"], "--format", "text", input=b"John lives here\n\nMary too\n\n")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["John lives here", "", "Mary too", ""]
    assert rows[1] == {"text": "", "tokens": [], "tags": [], "entities": []}
    assert len(rows[0]["tags"]) == 3 and len(rows[2]["tags"]) == 2


def test_an_empty_text_record_does_not_stop_the_stream(models):
    data = b'{"id": 1, "text": "good day"}\n{"id": 2, "text": ""}\n{"id": 3, "text": "bad"}\n'
    result = run("tag", "-m", models["classifier"], input=data)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[1] == {"id": 2, "text": "", "tokens": [], "label": None, "probs": {}}
    assert rows[0]["label"] in rows[0]["probs"]


def test_tag_writes_fasttext_predictions(models):
    result = run("tag", "-m", models["classifier"], "--format", "text", "--output-format", "fasttext",
                 input=b"good day\n\nbad\n")
    lines = result.stdout.split("\n")
    assert lines[1] == "" and len(lines) == 4
    for line in (lines[0], lines[2]):
        label, prob = line.split(" ")
        assert label.startswith("__label__") and 0 < float(prob) <= 1
    assert run("tag", "-m", models["tagger"], "--output-format", "fasttext", input=b"").stderr == \
        "seqtool tag: --output-format fasttext is for classifiers\n"


# ---------------------------------------------------------------- reading options through train and pipelines

def gmb_zip(path: Path, records: list[dict]) -> Path:
    rows = ["Sentence #,Word,POS,Tag"]
    for i, r in enumerate(records, 1):
        rows += [f"{'Sentence: %d' % i if j == 0 else ''},{t},X,{g}" for j, (t, g) in
                 enumerate(zip(r["tokens"], r["tags"]))]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ner_dataset.csv", ("\r\n".join(rows) + "\r\n").encode("cp1252"))
    return path


def test_train_reads_a_cp1252_csv_zip_and_a_pipeline_takes_the_options(models, tmp_path):
    records = [json.loads(line) for line in models["ner"].read_text().splitlines()]
    records = [r for r in records if "," not in "".join(r["tokens"]) and '"' not in "".join(r["tokens"])]
    records[0]["tokens"][0] = "Caf\u00e9"
    data = gmb_zip(tmp_path / "ner_dataset.csv.zip", records)
    result = run("-q", "train", "--train", data, "--encoding", "cp1252", "-o", tmp_path / "m", "--epochs", 1,
                 "--hidden", 8, "--embed", 8, "--no-char")
    assert result.exit_code == 0, result.stderr
    vocab = json.loads((tmp_path / "m" / "vocab.json").read_text())
    assert "caf\u00e9" in json.dumps(vocab, ensure_ascii=False)      # (the tagger looks words up in lower case)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(textwrap.dedent(f"""
        steps:
          vocab:
            input: {data}
            encoding: cp1252
            columns: "tokens=Word,tags=Tag,sentence=Sentence #"   # quoted: " #" starts a YAML comment
            output: {tmp_path / 'v.json'}
            stdout: {tmp_path / 'ids.jsonl'}
        """))
    result = run("-q", "run", pipeline)
    assert result.exit_code == 0, result.stderr
    first = json.loads((tmp_path / "ids.jsonl").read_text().splitlines()[0])
    assert first["tokens"][0] == "Caf\u00e9" and first["sentence"] == "Sentence: 1" and first["POS"][0] == "X"
