"""seqtool convert and the fastText format: round trips between every writable format, and bad records."""
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtool.cli import cli
from seqtool.data.fasttext import parse_line, prediction_line

TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="\x85"), min_size=1,
                max_size=6).filter(lambda t: t.split() == [t] and t != "-DOCSTART-")
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def jsonl(records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def bio(tags):
    """Tags as BIO allows them (I-X only after B-X or I-X): what a CoNLL reading gives back."""
    out = []
    for t in tags:
        out.append("B-" + t[2:] if t.startswith("I-") and (not out or out[-1][2:] != t[2:]) else t)
    return out


@st.composite
def tagged(draw):
    tokens = draw(st.lists(TOKEN, min_size=1, max_size=6))
    return {"tokens": tokens, "tags": bio(draw(st.lists(TAG, min_size=len(tokens), max_size=len(tokens))))}


@settings(max_examples=40, deadline=None)
@given(st.lists(tagged(), min_size=1, max_size=5))
def test_jsonl_to_conll_and_back_is_identity(records):
    conll = run("convert", "--to", "conll", input=jsonl(records))
    assert conll.exit_code == 0, conll.stderr
    back = run("convert", "--format", "conll", "--to", "jsonl", input=conll.stdout_bytes)
    assert back.exit_code == 0, back.stderr
    assert [json.loads(line) for line in back.stdout.splitlines()] == records


@pytest.mark.parametrize("to, fmt", [("csv", "csv"), ("tsv", "tsv"), ("fasttext", "fasttext")])
def test_classification_records_round_trip(to, fmt):
    records = [{"text": 'a "quoted", text\nover two lines', "label": "pos"}, {"text": "b", "label": "neg"}]
    if to == "fasttext":     # fastText lines hold one line of text, whitespace collapsed
        records[0]["text"] = 'a "quoted", text over two lines'
    out = run("convert", "--to", to, input=jsonl(records))
    assert out.exit_code == 0
    back = run("convert", "--format", fmt, "--to", "jsonl", input=out.stdout_bytes)
    assert [json.loads(line) for line in back.stdout.splitlines()] == records


def test_pairs_and_token_records_round_trip_through_csv():
    pairs = [{"q1": "x ?", "q2": "y ?", "is_duplicate": 1, "id": "7"}]
    out = run("convert", "--to", "csv", input=jsonl(pairs))
    assert out.stdout == "q1,q2,is_duplicate,id\nx ?,y ?,1,7\n"
    back = run("convert", "--format", "csv", "--to", "jsonl", input=out.stdout_bytes)
    assert [json.loads(back.stdout)] == pairs
    tokens = [{"tokens": ["Ann", "left"], "tags": ["B-PER", "O"]}, {"tokens": ["Bo"], "tags": ["B-PER"]}]
    out = run("convert", "--to", "csv", input=jsonl(tokens))
    assert out.stdout == "sentence,token,tag\n1,Ann,B-PER\n1,left,O\n2,Bo,B-PER\n"
    back = run("convert", "--format", "csv", "--to", "jsonl", input=out.stdout_bytes)
    assert [json.loads(line) for line in back.stdout.splitlines()] == [
        {**r, "sentence": str(i)} for i, r in enumerate(tokens, 1)]


def test_fasttext_with_two_labels():
    assert parse_line("__label__pos __label__sports  great   game\n") == {
        "text": "great game", "label": "pos", "labels": ["pos", "sports"]}
    assert parse_line("no label here") == {"text": "no label here"}
    out = run("convert", "--format", "fasttext", "--to", "fasttext", input=b"__label__a __label__b x y\n\nz\n")
    assert out.stdout == "__label__a __label__b x y\nz\n"          # blank lines skipped, as fastText does
    assert prediction_line({"label": "pos", "probs": {"pos": 0.97123, "neg": 0.02877}}) == "__label__pos 0.9712\n"


def test_a_record_the_target_cannot_hold_is_an_error_at_its_line():
    out = run("convert", "--to", "conll", input=b'{"tokens": ["a"]}\n{"tokens": ["New York"]}\n')
    assert out.exit_code == 1
    assert out.stderr == "seqtool convert: <stdin>:2: a token that is empty or holds a space cannot be a CoNLL column\n"
    out = run("convert", "--to", "csv", input=b'{"text": "a"}\n{"text": "b", "label": "x"}\n')
    assert out.stderr == ("seqtool convert: <stdin>:2: key 'label' is not a column (the header comes from the "
                          "first record: text)\n")


def test_text_to_conll_tokenizes_and_the_summary_counts():
    out = run("convert", "--format", "text", "--to", "conll", input=b"John lives here.\n")
    assert out.stdout == "John\nlives\nhere\n.\n\n"
    assert out.stderr == "seqtool convert: 1 record text -> conll\n"
