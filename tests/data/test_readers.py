"""Readers: CoNLL columns and IOB1 -> BIO, plain text, format guessing, Source errors and skipping."""
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqtool.errors import DataError, UsageError
from seqtool.data.jsonl import InvalidRecords, iter_jsonl, read_lines
from seqtool.data.readers import Source, guess_format, iob1_to_bio, iter_conll

CONLL = """-DOCSTART- -X- O

EU NNP I-ORG
rejects VBZ O
German JJ I-MISC

Peter NNP I-PER
Blackburn NNP I-PER
"""


def records(path, **kw) -> list:
    return list(Source(str(path), **kw))


@pytest.fixture
def conll(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text(CONLL)
    return path


def test_conll_sentences_with_iob1_tags_become_bio(conll):
    assert records(conll) == [
        (3, {"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]}),
        (7, {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}),
    ]


def test_conll_columns_can_be_chosen(conll):
    assert [r["tags"] for _, r in records(conll, tag_column=2)] == [["NNP", "VBZ", "JJ"], ["NNP", "NNP"]]
    assert [r["tokens"] for _, r in records(conll, token_column=-2)][1] == ["NNP", "NNP"]
    assert records(conll, tag_column=0)[1] == (7, {"tokens": ["Peter", "Blackburn"]})


def test_conll_tabs_crlf_and_no_final_blank_line(tmp_path):
    path = tmp_path / "a.bio"
    path.write_bytes(b"Ann\tB-PER\r\nsaw\tO\r\n\r\n\r\nBo\tB-PER")
    assert records(path) == [(1, {"tokens": ["Ann", "saw"], "tags": ["B-PER", "O"]}),
                             (5, {"tokens": ["Bo"], "tags": ["B-PER"]})]


def test_conll_line_with_too_few_columns(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("Ann NNP B-PER\nsaw\n")
    with pytest.raises(DataError) as e:
        records(path, tag_column=3)
    assert str(e.value) == f"{path}:2: expected at least 3 columns, found 1"


def test_conll_one_column_file_needs_tag_column_0(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("Ann\nsaw\n")
    with pytest.raises(DataError) as e:
        records(path)
    assert str(e.value) == (f"{path}:1: the token and the tag would both be column 1 "
                            "(use --tag-column 0 for a file without tags)")
    assert records(path, tag_column=0) == [(1, {"tokens": ["Ann", "saw"]})]


def test_conll_column_0_is_a_usage_error(conll):
    with pytest.raises(UsageError, match="--token-column counts from 1"):
        records(conll, token_column=0)


def test_conll_skip_invalid_drops_the_whole_sentence(tmp_path):
    path = tmp_path / "a.conll"
    path.write_bytes(b"Ann B-PER\nsa\xffw O\n\nBo B-PER\n")
    src = Source(str(path), skip_invalid=True)
    assert list(src) == [(4, {"tokens": ["Bo"], "tags": ["B-PER"]})]
    assert src.reject.warning() == f"skipped 1 invalid record (first: {path}:2: not UTF-8 (byte 0xff at column 3): give the file's --encoding (e.g. cp1252, latin-1, utf-16))"


def test_text_one_example_per_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("  good day :)\n\nnot happy\r\n")
    # a blank line is a record too: one record per input line, so tag's output lines up with its input
    assert records(path) == [(1, {"text": "good day :)"}), (2, {"text": ""}), (3, {"text": "not happy"})]


@pytest.mark.parametrize("path, fmt", [
    ("-", "jsonl"), ("a.jsonl", "jsonl"), ("a.json", "jsonl"), ("a.JSONL", "jsonl"), ("noext", "jsonl"),
    ("a.conll", "conll"), ("a.bio", "conll"), ("a.iob", "conll"), ("a.iob2", "conll"), ("a.txt", "text"),
])
def test_format_is_guessed_from_the_extension(path, fmt):
    assert guess_format(path) == fmt


def test_the_format_option_wins_over_the_extension(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text('{"text": "hi"}\n')
    assert records(path, fmt="jsonl") == [(1, {"text": "hi"})]
    with pytest.raises(UsageError):
        Source(str(path), fmt="xml")


def test_the_name_in_messages_can_be_changed(tmp_path):
    path = tmp_path / "copy.jsonl"
    path.write_text("[]\n")
    src = Source(str(path))
    src.name = "<stdin>"
    with pytest.raises(DataError, match="^<stdin>:1: expected a JSON object, found an array$"):
        list(src)


def test_map_locates_errors_of_the_function(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"n": 1}\n\n{"n": -1}\n')

    def positive(record):
        if record["n"] < 0:
            raise DataError("n must be positive")
        return record["n"]

    with pytest.raises(DataError) as e:
        list(Source(str(path)).map(positive))
    assert str(e.value) == f"{path}:3: n must be positive"
    src = Source(str(path), skip_invalid=True)
    assert list(src.map(positive)) == [1]
    assert src.reject.count == 1


# ---------------------------------------------------------------- properties

# No whitespace (separators, controls) and no surrogates: what a CoNLL token can be.
TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=6)
SPAN = st.tuples(st.sampled_from(["O", "PER", "LOC", "ORG"]), st.integers(1, 3))


@st.composite
def tagged_sentence(draw) -> tuple[list[str], list[str]]:
    """Tokens with BIO tags built from spans, so the tags are always valid IOB2."""
    tags = []
    for kind, size in draw(st.lists(SPAN, min_size=1, max_size=6)):
        tags += ["O"] * size if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (size - 1)
    tokens = draw(st.lists(TOKEN.filter(lambda t: t != "-DOCSTART-"), min_size=len(tags), max_size=len(tags)))
    return tokens, tags


def to_iob1(tags: list[str]) -> list[str]:
    out, prev = [], "O"
    for tag in tags:
        out.append("I-" + tag[2:] if tag.startswith("B-") and prev[2:] != tag[2:] else tag)
        prev = tag
    return out


@given(st.lists(tagged_sentence(), min_size=1, max_size=5))
def test_conll_round_trip(sentences):
    text = "-DOCSTART- -X- O\n\n" + "".join(
        "".join(f"{t} x {g}\n" for t, g in zip(tokens, to_iob1(tags))) + "\n" for tokens, tags in sentences)
    lines = read_lines(io.BytesIO(text.encode()))
    assert [r for _, r in iter_conll(lines, InvalidRecords("x"))] == [{"tokens": t, "tags": g} for t, g in sentences]


@given(tagged_sentence())
def test_iob1_to_bio_inverts_bio_to_iob1_and_keeps_bio(sentence):
    _, tags = sentence
    assert iob1_to_bio(to_iob1(tags)) == tags
    assert iob1_to_bio(tags) == tags


@given(st.lists(st.dictionaries(st.sampled_from(["id", "text", "n"]), st.text() | st.integers()), max_size=5))
def test_jsonl_round_trip(recs):
    lines = read_lines(io.BytesIO("".join(json.dumps(r) + "\n" for r in recs).encode()))
    assert [r for _, r in iter_jsonl(lines, InvalidRecords("x"))] == recs
