"""JSON Lines reading and writing: line numbers, error messages, skip counting, atomic writes."""
import io
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqtool.errors import DataError, UsageError
from seqtool.data.jsonl import (InvalidRecords, dumps, iter_jsonl, open_input, parse_record, read_lines,
                           source_name, write_atomic, write_records)


def read(data: bytes, skip: bool = False) -> tuple[list, InvalidRecords]:
    reject = InvalidRecords("in.jsonl", skip)
    return list(iter_jsonl(read_lines(io.BytesIO(data)), reject)), reject


def test_records_come_with_their_line_numbers_and_blank_lines_are_skipped():
    records, _ = read(b'{"a": 1}\n\n   \n{"b": "x"}\r\n{"c": []}')
    assert records == [(1, {"a": 1}), (4, {"b": "x"}), (5, {"c": []})]


def test_a_utf8_byte_order_mark_is_ignored():
    records, _ = read(b'\xef\xbb\xbf{"a": "\xc3\xa9"}\n')
    assert records == [(1, {"a": "é"})]


@pytest.mark.parametrize("line, message", [
    (b'{"a": 1', "not valid JSON: Expecting ',' delimiter at column 8"),
    (b'{"a": 1}}', "not valid JSON: Extra data at column 9"),
    (b'{"a', "not valid JSON: Unterminated string starting at column 2"),
    (b'{"a": "\t"}', "not valid JSON: Invalid control character at column 8"),
    (b"[1, 2]", "expected a JSON object, found an array"),
    (b'"text"', "expected a JSON object, found a string"),
    (b"3", "expected a JSON object, found a number"),
    (b"null", "expected a JSON object, found null"),
    (b'{"a": "caf\xe9"}', "not UTF-8 (byte 0xe9 at column 11): give the file's --encoding (e.g. cp1252, latin-1, utf-16)"),
])
def test_a_bad_line_stops_with_its_location(line, message):
    with pytest.raises(DataError) as e:
        read(b'{"ok": 1}\n' + line + b"\n")
    assert str(e.value) == f"in.jsonl:2: {message}"


def test_skip_invalid_counts_and_keeps_the_first_error():
    records, reject = read(b'{"a": 1}\nnope\n[]\n{"b": 2}\n', skip=True)
    assert records == [(1, {"a": 1}), (4, {"b": 2})]
    assert reject.count == 2
    assert reject.warning() == ("skipped 2 invalid records "
                                "(first: in.jsonl:2: not valid JSON: Expecting value at column 1)")


def test_no_warning_when_nothing_was_skipped():
    assert read(b'{"a": 1}\n', skip=True)[1].warning() is None


def test_stdin_is_named_in_messages():
    assert source_name("-") == "<stdin>"
    assert source_name("data/x.jsonl") == "data/x.jsonl"


def test_a_missing_file_is_a_usage_error(tmp_path):
    path = str(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError) as e:
        with open_input(path):
            pass
    assert str(e.value) == f"{path}: No such file or directory"


def test_records_are_written_compact_and_utf8():
    out = io.BytesIO()
    n = write_records([{"a": [1, 2], "t": "café ☺"}, {}], out)
    assert n == 2
    assert out.getvalue() == '{"a":[1,2],"t":"café ☺"}\n{}\n'.encode()


@given(st.dictionaries(st.text(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8), max_size=5))
def test_whatever_is_written_reads_back_the_same(record):
    out = io.BytesIO()
    write_records([record], out)
    assert out.getvalue().count(b"\n") == 1  # one record, one line, whatever the strings hold
    assert parse_record(out.getvalue()) == record
    assert json.loads(dumps(record)) == record


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text("old")
    write_atomic(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["vocab.json"]


def test_write_atomic_into_a_missing_folder_is_a_usage_error(tmp_path):
    path = str(tmp_path / "no" / "vocab.json")
    with pytest.raises(UsageError) as e:
        write_atomic(path, "x")
    assert str(e.value) == f"{path}: cannot write: No such file or directory"
