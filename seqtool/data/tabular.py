"""CSV and TSV tables as records: the csv module's dialects, a column mapping, two layouts.

The first row names the columns (``--no-header``: columns are numbered from 1).
``--columns key=column,...`` maps columns to record keys (a header name or a
number); without it, or for the keys it leaves out, well-known header names map
themselves (``WELL_KNOWN``: ``Word`` -> tokens, ``question1`` -> q1, ...). Every
column no key takes passes through under its header name (``column3`` without a
header), so an ``id`` survives the pipeline.

Layouts, chosen by the mapping:
  one token per row  when ``tokens`` is mapped (tagging corpora): rows make
                     sentences -> {"tokens", "tags", "sentence", <column>: [...]},
                     a new sentence where the ``sentence`` column changes to a
                     non-empty value (so it may be filled on every row or, as in
                     Kaggle's GMB ner_dataset.csv, on a sentence's first row only)
                     and at blank rows; tags are made BIO (IOB2) as CoNLL's are
  one record per row otherwise: {"text", "label"} or {"q1", "q2", "is_duplicate"};
                     in a pair, a ``label`` column is the is_duplicate value
A record's line is its first row's first line (quoted fields may span lines).
"""
import csv
import sys
from typing import Iterable, Iterator

from seqtool.data.tags import iob1_to_bio
from seqtool.errors import DataError, UsageError

# Record key -> header names that map to it without --columns (compared in lower case).
WELL_KNOWN = {
    "tokens": ("word", "token", "words", "tokens", "form"),
    "tags": ("tag", "tags", "ner", "ner_tag", "ner_tags", "iob", "bio"),
    "sentence": ("sentence #", "sentence_id", "sentence_idx", "sent_id", "sentence", "sentence_no"),
    "text": ("text", "sentence", "tweet", "content", "review", "document"),
    "label": ("label", "sentiment", "class", "category", "airline_sentiment"),
    "q1": ("question1", "q1", "text1", "sentence1"),
    "q2": ("question2", "q2", "text2", "sentence2"),
    "is_duplicate": ("is_duplicate", "duplicate", "is_paraphrase"),
}
TOKEN_KEYS = ("tokens", "tags", "sentence")
ROW_KEYS = ("text", "label", "q1", "q2", "is_duplicate")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))   # a long document in one cell is data, not an error


def parse_columns(spec: str | None) -> dict[str, str]:
    """``"tokens=Word,sentence=Sentence #"`` -> {"tokens": "Word", "sentence": "Sentence #"} (quotes stripped)."""
    mapping: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        key, sep, column = item.partition("=")
        key, column = key.strip(), column.strip().strip("\"'")
        if not sep or not key or not column:
            raise UsageError(f"--columns takes key=column pairs separated by commas, not {item.strip()!r}")
        if key in mapping:
            raise UsageError(f"--columns maps {key!r} twice")
        mapping[key] = column
    return mapping


class Layout:
    """Which column feeds which record key, decided from the header (or first row) and --columns."""

    def __init__(self, names: list[str] | None, width: int, spec: str | None):
        self.names = names                                   # None: no header
        self.width = width
        self.keys = self._resolve(parse_columns(spec))       # key -> column index
        self.per_token = "tokens" in self.keys
        if self.per_token:
            stray = [k for k in ROW_KEYS if k in self.keys]
            if stray:
                raise UsageError(f"one token per row (tokens is mapped) does not go with {', '.join(stray)}")
        elif not {"text", "q1"} & self.keys.keys():
            raise UsageError(f"no column maps to tokens, text or q1/q2 ({self.describe()}): "
                             "give --columns, e.g. text=NAME,label=NAME or tokens=NAME,tags=NAME")
        if not self.per_token and "q1" in self.keys and "label" in self.keys and "is_duplicate" not in self.keys:
            self.keys["is_duplicate"] = self.keys.pop("label")   # BiMPM's label column is the pair's
        taken = set(self.keys.values())
        self.extras = [(self._name(i), i) for i in range(width) if i not in taken and self._name(i) not in self.keys]

    def describe(self) -> str:
        if self.names is None:
            return f"{self.width} unnamed columns"
        return "the header is " + ", ".join(self.names)

    def _name(self, i: int) -> str:
        return self.names[i] if self.names is not None and self.names[i] else f"column{i + 1}"

    def _resolve(self, given: dict[str, str]) -> dict[str, int]:
        keys = {key: self._index(key, column) for key, column in given.items()}
        if self.names is None:
            if not keys:
                raise UsageError("--no-header needs --columns with column numbers (e.g. text=2,label=1)")
            return keys
        lower = [n.strip().lower() for n in self.names]
        per_token = "tokens" in keys or any(n in WELL_KNOWN["tokens"] for n in lower)
        for key in ("tokens", *TOKEN_KEYS[1:]) if per_token else ROW_KEYS:
            if key in keys:
                continue
            hit = next((i for name in WELL_KNOWN[key] for i, n in enumerate(lower)
                        if n == name and i not in keys.values()), None)
            if hit is not None:
                keys[key] = hit
        return keys

    def _index(self, key: str, column: str) -> int:
        if column.lstrip("-").isdigit():
            n = int(column)
            if not 1 <= n <= self.width:
                raise UsageError(f"--columns {key}={column}: the table has columns 1 to {self.width}")
            return n - 1
        if self.names is None:
            raise UsageError(f"--columns {key}={column}: without a header, give column numbers (from 1)")
        exact = [i for i, n in enumerate(self.names) if n == column]
        loose = [i for i, n in enumerate(self.names) if n.strip().lower() == column.lower()]
        if not (exact or loose):
            raise UsageError(f"--columns {key}={column}: no such column ({self.describe()})")
        return (exact or loose)[0]

    def record(self, row: list[str]) -> dict:
        """One row's record (one record per row)."""
        record = {key: row[i] for key, i in self.keys.items()}
        if "is_duplicate" in record:
            value = record["is_duplicate"].strip().lower()
            flag = {"0": 0, "1": 1, "false": 0, "true": 1}.get(value)
            if flag is None:
                raise DataError(f"is_duplicate must be 0 or 1, found {record['is_duplicate']!r}")
            record["is_duplicate"] = flag
        for name, i in self.extras:
            record[name] = row[i]
        return record


def _dialect(fmt: str, quotes: bool) -> dict:
    dialect = {"dialect": "excel-tab" if fmt == "tsv" else "excel"}
    if not quotes:
        dialect["quoting"] = csv.QUOTE_NONE
    return dialect


def _rows(lines: Iterable[tuple[int, str]], fmt: str, quotes: bool) -> Iterator[tuple[int, list[str]]]:
    """(the row's first line, its fields) for every row; csv's own errors as DataErrors at their line."""
    reader = csv.reader((line for _, line in lines), **_dialect(fmt, quotes))
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"not valid {fmt.upper()}: {e}", None, start) from None
        yield start, row


def iter_table(lines: Iterable[tuple[int, str]], reject, fmt: str = "csv", columns: str | None = None, *,
               header: bool = True, quotes: bool = True) -> Iterator[tuple[int, dict]]:
    """(line, record) for the table in ``lines`` (numbered decoded lines), laid out as the module doc says."""
    rows = _rows(lines, fmt, quotes)
    first = next(((n, r) for n, r in rows if any(cell.strip() for cell in r)), None)
    if first is None:
        return
    try:
        layout = Layout(first[1] if header else None, len(first[1]), columns)
    except UsageError as e:
        raise UsageError(e.message, reject.name, first[0]) from None
    if not header:
        rows = _prepend(first, rows)
    width_error = f"expected {layout.width} columns" + (" (as the header)" if header else " (as the first row)")

    def checked(numbered_rows):
        for lineno, row in numbered_rows:
            if row and len(row) != layout.width and any(cell.strip() for cell in row):
                reject(DataError(f"{width_error}, found {len(row)}"), lineno)
                continue
            yield lineno, row

    if layout.per_token:
        yield from _sentences(checked(rows), layout, reject)
        return
    for lineno, row in checked(rows):
        if not any(cell.strip() for cell in row):
            continue
        try:
            record = layout.record(row)
        except DataError as e:
            reject(e, lineno)
            continue
        yield lineno, record


def _prepend(first, rows):
    yield first
    yield from rows


def _sentences(rows, layout: Layout, reject) -> Iterator[tuple[int, dict]]:
    """One token per row -> one record per sentence (see the module doc)."""
    tok, tag, sent = (layout.keys.get(k) for k in TOKEN_KEYS)
    rows_of: list[list[str]] = []
    start, current = 0, None

    def finish():
        record = {"tokens": [r[tok] for r in rows_of]}
        if tag is not None:
            record["tags"] = iob1_to_bio([r[tag] for r in rows_of])
        if sent is not None:
            record["sentence"] = current
        for name, i in layout.extras:
            record[name] = [r[i] for r in rows_of]
        return start, record

    for lineno, row in rows:
        blank = not any(cell.strip() for cell in row)
        new_id = sent is not None and not blank and row[sent].strip() and row[sent] != current
        if rows_of and (blank or new_id):
            yield finish()
            rows_of = []
        if blank:
            continue
        if not rows_of:
            start = lineno
        if new_id:
            current = row[sent]
        if not row[tok].strip():
            reject(DataError("a token row with an empty token"), lineno)
            continue
        rows_of.append(row)
    if rows_of:
        yield finish()
