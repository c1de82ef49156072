"""The CLI through click's runner: exact stdout, stderr and exit codes for vocab and pad."""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool import __version__
from seqtool.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"

TAGGED = (b'{"id": "a", "tokens": ["Ann", "saw", "Bo"], "tags": ["B-PER", "O", "B-PER"]}\n'
          b'\n'
          b'{"id": "b", "tokens": ["Bo", "left"], "tags": ["B-PER", "O"], "meta": {"x": [1, null]}}\n')


def run(*args, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture
def vocab_file(tmp_path) -> str:
    path = str(tmp_path / "vocab.json")
    assert run("vocab", "-o", path, input=TAGGED).exit_code == 0
    return path


def test_vocab_builds_saves_and_emits_ids(tmp_path):
    path = tmp_path / "v.json"
    result = run("vocab", "-o", str(path), input=TAGGED)
    assert result.exit_code == 0
    assert result.stdout == (
        '{"id":"a","tokens":["Ann","saw","Bo"],"tags":["B-PER","O","B-PER"],"ids":[3,5,2],"tag_ids":[1,0,1]}\n'
        '{"id":"b","tokens":["Bo","left"],"tags":["B-PER","O"],"meta":{"x":[1,null]},"ids":[2,4],"tag_ids":[1,0]}\n')
    assert result.stderr == f"seqtool vocab: 2 records; 6 words, 2 tags, 0 labels, 13 characters -> {path}\n"
    saved = json.loads(path.read_text())
    assert [w for w, _ in saved["words"]] == ["<PAD>", "<UNK>", "Bo", "Ann", "left", "saw"]


def test_vocab_applies_a_saved_vocabulary(vocab_file):
    result = run("vocab", "--vocab", vocab_file, input=b'{"tokens": ["Bo", "ran"], "tags": ["B-PER", "O"]}\n')
    assert result.exit_code == 0
    assert lines(result.stdout) == [{"tokens": ["Bo", "ran"], "tags": ["B-PER", "O"], "ids": [2, 1], "tag_ids": [1, 0]}]
    assert result.stderr == f"seqtool vocab: 1 record, ids from {vocab_file}\n"


def test_unknown_tag_names_the_tag_and_the_line(vocab_file):
    result = run("vocab", "--vocab", vocab_file, input=b'{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"], "tags": ["I-LOC"]}\n')
    assert result.exit_code == 1
    assert result.stdout == '{"tokens":["a"],"tags":["O"],"ids":[1],"tag_ids":[0]}\n'
    assert result.stderr == "seqtool vocab: <stdin>:2: unknown tag \"I-LOC\" (not in the vocabulary's 2 tags)\n"


@pytest.mark.parametrize("data, message", [
    (b'{"tokens": ["a"]}\n{"tokens": ["a"\n', "<stdin>:2: not valid JSON: Expecting ',' delimiter at column 16"),
    (b'{"tokens": ["a"]}\n["a"]\n', "<stdin>:2: expected a JSON object, found an array"),
    (b'{"tokens": ["a", "b"], "tags": ["O"]}\n', '<stdin>:1: "tags" has 1 items but "tokens" has 2'),
    (b'{"tokens": ["a"]}\n{"text": "caf\xe9"}\n', "<stdin>:2: not UTF-8 (byte 0xe9 at column 14): give the file's --encoding (e.g. cp1252, latin-1, utf-16)"),
    (b"", "<stdin>: no records"),
    (b"\n  \n", "<stdin>: no records"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, data, message):
    result = run("vocab", "-o", str(tmp_path / "v.json"), input=data)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"seqtool vocab: {message}\n")
    assert not (tmp_path / "v.json").exists()


def test_empty_file_and_missing_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = run("vocab", "-o", str(tmp_path / "v.json"), str(empty))
    assert (result.exit_code, result.stderr) == (1, f"seqtool vocab: {empty}: no records\n")
    missing = tmp_path / "missing.jsonl"
    result = run("vocab", "-o", str(tmp_path / "v.json"), str(missing))
    assert (result.exit_code, result.stderr) == (2, f"seqtool vocab: {missing}: No such file or directory\n")


def test_vocab_needs_exactly_one_of_output_and_vocab(vocab_file):
    result = run("vocab", input=TAGGED)
    assert (result.exit_code, result.stderr) == (
        2, "seqtool vocab: give -o FILE to build a vocabulary, or --vocab FILE to apply a saved one\n")
    result = run("vocab", "-o", "x.json", "--vocab", vocab_file, input=TAGGED)
    assert (result.exit_code, result.stderr) == (
        2, "seqtool vocab: -o builds a vocabulary and --vocab applies one: give one of them\n")


def test_a_bad_option_is_a_usage_error():
    result = run("pad", "--batch-size", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--batch-size': 0 is not in the range x>=1." in result.stderr


def test_skip_invalid_reports_the_count_even_with_q(tmp_path):
    data = b'{"tokens": ["a"]}\nnot json\n{"tokens": []}\n{"tokens": ["b"]}\n'
    result = run("-q", "vocab", "-o", str(tmp_path / "v.json"), "--skip-invalid", input=data)
    assert result.exit_code == 0
    assert [r["tokens"] for r in lines(result.stdout)] == [["a"], ["b"]]
    assert result.stderr == ("seqtool vocab: skipped 2 invalid records (first: <stdin>:2: "
                             "not valid JSON: Expecting value at column 1)\n")


def test_conll_and_text_inputs(tmp_path, sample_data):
    result = run("-q", "vocab", "-o", str(tmp_path / "v.json"), str(sample_data / "ner.conll"))
    assert result.exit_code == 0 and result.stderr == ""
    jsonl = [json.loads(line) for line in (sample_data / "ner.jsonl").read_text().splitlines()]
    assert [r["tags"] for r in lines(result.stdout)] == [r["tags"] for r in jsonl]
    text = tmp_path / "tweets.txt"
    text.write_text("so happy :)\nnot happy :(\n")
    result = run("-q", "vocab", "-o", str(tmp_path / "v2.json"), str(text))
    assert [r["tokens"] for r in lines(result.stdout)] == [["so", "happy", ":)"], ["not", "happy", ":("]]


def test_pad_pads_within_batches(vocab_file):
    ids = run("-q", "vocab", "--vocab", vocab_file, input=TAGGED).stdout
    result = run("pad", "--batch-size", "2", input=ids.encode())
    assert result.exit_code == 0
    assert result.stdout == (
        '{"id":"a","tokens":["Ann","saw","Bo"],"tags":["B-PER","O","B-PER"],"ids":[3,5,2],"tag_ids":[1,0,1],'
        '"mask":[1,1,1],"length":3,"batch":0}\n'
        '{"id":"b","tokens":["Bo","left"],"tags":["B-PER","O"],"meta":{"x":[1,null]},"ids":[2,4,0],"tag_ids":[1,0,0],'
        '"mask":[1,1,0],"length":2,"batch":0}\n')
    assert result.stderr == "seqtool pad: 2 records in 1 batch; 16.7% of the positions are padding\n"


def test_pad_to_a_length_reports_truncation():
    result = run("pad", "--length", "2", input=b'{"ids": [5, 6, 7]}\n{"ids": [5]}\n')
    assert result.exit_code == 0
    assert lines(result.stdout) == [{"ids": [5, 6], "mask": [1, 1], "length": 2, "batch": 0},
                                    {"ids": [5, 0], "mask": [1, 0], "length": 1, "batch": 0}]
    assert result.stderr == ("seqtool pad: truncated 1 record to 2 tokens\n"
                             "seqtool pad: 2 records in 1 batch; 25.0% of the positions are padding\n")


def test_pad_errors_and_empty_input():
    result = run("pad", input=b'{"ids": [1]}\n{"tokens": ["a"]}\n')
    assert (result.exit_code, result.stderr) == (
        1, 'seqtool pad: <stdin>:2: no "ids", "q1_ids" or "q2_ids" to pad (run seqtool vocab first)\n')
    result = run("-q", "pad", input=b"")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_pairs_through_vocab_and_pad(tmp_path, sample_data):
    ids = run("-q", "vocab", "-o", str(tmp_path / "v.json"), str(sample_data / "pairs.jsonl")).stdout
    out = lines(run("-q", "pad", "--batch-size", "8", input=ids.encode()).stdout)
    assert len(out) == 300
    for r in out:
        assert {"id", "q1", "q2", "is_duplicate", "q1_ids", "q1_mask", "q1_length", "q2_length"} <= set(r)
        assert sum(r["q1_mask"]) == r["q1_length"] == len(r["q1_tokens"])


def test_version_names_numpy_numba_and_python_without_importing_them():
    import platform
    import subprocess
    import sys
    from importlib.metadata import version

    result = run("--version")
    assert (result.exit_code, result.stdout) == (0, f"seqtool, version {__version__} (numpy {version('numpy')}, "
                                                    f"numba {version('numba')}, Python {platform.python_version()})\n")
    code = ("import sys\nfrom seqtool.cli import cli\ntry:\n    cli.main(['--version'])\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_and_is_in_the_readme(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and result.stdout.startswith(f"Usage: cli {command} [OPTIONS]")
    assert cli.commands[command].get_short_help_str()
    assert re.search(rf"^\| `seqtool {command}` \|", README.read_text(), re.M)
