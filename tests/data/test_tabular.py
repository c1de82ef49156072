"""CSV and TSV inputs: the two layouts, column mapping, the course corpora's layouts, and bad tables."""
import json

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.data.readers import Reading, Source
from seqtool.errors import DataError, UsageError

GMB = ("Sentence #,Word,POS,Tag\r\n"
       "Sentence: 1,Thousands,NNS,O\r\n"
       ",of,IN,O\r\n"
       ",Caf\u00e9,NNP,B-geo\r\n"
       "Sentence: 2,Families,NNS,O\r\n"
       ",of,IN,O\r\n")
QUORA_CSV = ('"id","qid1","qid2","question1","question2","is_duplicate"\n'
             '"0","1","2","What is ""this""?","How, if\nat all?","0"\n'
             '"1","3","4","Why?","Why not?","1"\n')


def read(path, fmt=None, **reading):
    return list(Source(str(path), Reading(format=fmt, **reading) if reading else fmt))


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_gmb_layout_sentence_ids_on_first_rows_in_a_cp1252_zip(tmp_path):
    import zipfile

    path = tmp_path / "ner_dataset.csv.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ner_dataset.csv", GMB.encode("cp1252"))
    assert read(path, encoding="cp1252") == [
        (2, {"tokens": ["Thousands", "of", "Caf\u00e9"], "tags": ["O", "O", "B-geo"], "sentence": "Sentence: 1",
             "POS": ["NNS", "IN", "NNP"]}),
        (5, {"tokens": ["Families", "of"], "tags": ["O", "O"], "sentence": "Sentence: 2", "POS": ["NNS", "IN"]})]
    result = run("convert", str(path), "--to", "jsonl")       # UTF-8 by default: the byte and the way out
    assert result.exit_code == 1
    assert result.stderr == (f"seqtool convert: {path}:4: not UTF-8 (byte 0xe9 at column 5): give the file's "
                             "--encoding (e.g. cp1252, latin-1, utf-16)\n")


def test_sentence_ids_on_every_row_and_blank_rows(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("sent_id,token,ner\n7,Ann,B-PER\n7,left,O\n8,Bo,B-PER\n\n,again,O\n", encoding="utf-8")
    assert [r for _, r in read(path)] == [
        {"tokens": ["Ann", "left"], "tags": ["B-PER", "O"], "sentence": "7"},
        {"tokens": ["Bo"], "tags": ["B-PER"], "sentence": "8"},
        {"tokens": ["again"], "tags": ["O"], "sentence": "8"}]   # a blank row ends a sentence too
    blank_rows = tmp_path / "b.tsv"
    blank_rows.write_text("Word\tTag\nAnn\tI-PER\nleft\tO\n\nBo\tB-PER\n")
    assert read(blank_rows) == [(2, {"tokens": ["Ann", "left"], "tags": ["B-PER", "O"]}),   # IOB1 -> BIO
                                (5, {"tokens": ["Bo"], "tags": ["B-PER"]})]


def test_quora_csv_quoted_fields_embedded_newlines_and_extra_columns(tmp_path):
    path = tmp_path / "quora_duplicate_questions.csv"
    path.write_text(QUORA_CSV)
    assert read(path) == [
        (2, {"q1": 'What is "this"?', "q2": "How, if\nat all?", "is_duplicate": 0, "id": "0", "qid1": "1",
             "qid2": "2"}),
        (4, {"q1": "Why?", "q2": "Why not?", "is_duplicate": 1, "id": "1", "qid1": "3", "qid2": "4"})]


def test_bimpm_tsv_without_header_by_column_numbers(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('1\tHow old are you ?\tWhat is your age ?\t17\n0\t"Quoted" start ?\tb\t18\n')
    got = read(path, header=False, quotes=False, columns="label=1,q1=2,q2=3,id=4")
    assert got == [(1, {"is_duplicate": 1, "q1": "How old are you ?", "q2": "What is your age ?", "id": "17"}),
                   (2, {"is_duplicate": 0, "q1": '"Quoted" start ?', "q2": "b", "id": "18"})]
    unnamed = read(path, header=False, quotes=False, columns="q1=2,q2=3")
    assert unnamed[0][1] == {"q1": "How old are you ?", "q2": "What is your age ?", "column1": "1",
                             "column4": "17"}


def test_classification_csv_by_header_and_by_columns(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text("id,airline_sentiment,tweet\n5,negative,late again\n6,positive,thanks :)\n")
    assert [r for _, r in read(path)] == [{"text": "late again", "label": "negative", "id": "5"},
                                         {"text": "thanks :)", "label": "positive", "id": "6"}]
    mapped = read(path, columns="text=id,label=3")
    assert mapped[0][1] == {"text": "5", "label": "late again", "airline_sentiment": "negative"}


@pytest.mark.parametrize("content, reading, message", [
    ("text,label\na,pos\nb\n", {}, "{path}:3: expected 2 columns (as the header), found 1"),
    ("text,label\na,pos\n", {"columns": "text=body"},
     "{path}:1: --columns text=body: no such column (the header is text, label)"),
    ("when,where,who\n1,2,3\n", {}, "{path}:1: no column maps to tokens, text or q1/q2 (the header is when, "
                                    "where, who): give --columns, e.g. text=NAME,label=NAME or tokens=NAME,tags=NAME"),
    ("a,b\n", {"header": False}, "{path}:1: --no-header needs --columns with column numbers (e.g. text=2,label=1)"),
    ("q1,q2,is_duplicate\na,b,maybe\n", {}, "{path}:2: is_duplicate must be 0 or 1, found 'maybe'"),
    ('text,label\n"open,pos\nb,neg\n', {}, "{path}:2: expected 2 columns (as the header), found 1"),  # open quote
])
def test_bad_tables_are_one_line_errors_with_the_line(tmp_path, content, reading, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises((DataError, UsageError)) as e:
        read(path, **reading)
    assert str(e.value) == message.format(path=path)


def test_skip_invalid_skips_a_short_row_and_counts_it(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\na,pos\nb\nc,neg\n")
    src = Source(str(path), skip_invalid=True)
    assert [r["text"] for _, r in src] == ["a", "c"]
    assert src.reject.count == 1


def test_csv_options_refused_for_other_formats():
    with pytest.raises(UsageError, match="are for --format csv or tsv"):
        Source("x.jsonl", Reading(format="jsonl", columns="text=1"))
    result = run("vocab", "-o", "v.json", "--format", "conll", "--no-header")
    assert result.exit_code == 2 and "are for --format csv or tsv" in result.stderr


def test_train_and_vocab_read_a_csv_through_the_cli(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("Word,Tag\nAnn,B-PER\nleft,O\n\nBo,B-PER\n")
    result = run("vocab", "-o", str(tmp_path / "v.json"), str(path))
    assert result.exit_code == 0, result.stderr
    assert [r["tokens"] for r in map(json.loads, result.stdout.splitlines())] == [["Ann", "left"], ["Bo"]]
