"""Input formats: JSONL, CoNLL columns, plain text, CSV/TSV and fastText, all read as records.

``Source(path, fmt)`` is what a stage reads: it opens a path or ``-`` (compressed
or not, in the given encoding: streams.py), picks the reader for the format
(given, or guessed from the file extension under any compression suffix), and
yields ``(line number, record)`` pairs. ``Source.map(fn)`` applies a per-record
function and reports a ``DataError`` it raises at the record's line, so every
stage gets the same ``<file>:<line>: <message>`` errors and ``--skip-invalid``.
``fmt`` is a format name or a ``Reading`` (the format with --encoding,
--columns, --no-header, --no-quotes), which is what the CLI and pipelines pass.

Formats:
  jsonl     one JSON object per line (the default, and always for stdin)
  conll     whitespace-separated columns, one token per line; a blank line or a
            ``-DOCSTART-`` line ends a sentence; -> {"tokens": [...], "tags": [...]}
            with IOB1 tags converted to IOB2 (BIO); a record's line is its first token's
  text      one example per line -> {"text": "..."} (surrounding whitespace stripped);
            a blank line is a record too ({"text": ""}), so output lines match input lines
  csv, tsv  a table with a header row (tabular.py): one record per row, or one token per row
            grouped into sentences; --columns maps columns to record keys
  fasttext  ``__label__a __label__b text`` -> {"text": ..., "label": "a", "labels": ["a", "b"]}

Extensions: .conll .bio .iob .iob1 .iob2 -> conll; .txt -> text; .csv -> csv; .tsv .tab -> tsv;
anything else -> jsonl; .gz .bz2 .xz .zip are looked under.
"""
import os
from dataclasses import dataclass
from itertools import chain
from typing import Callable, Iterable, Iterator

from seqtool.errors import DataError, SeqtoolError, UsageError
from seqtool.data.fasttext import iter_fasttext
from seqtool.data.formats import FORMATS
from seqtool.data.jsonl import STDIN, InvalidRecords, decode_line, iter_jsonl, source_name
from seqtool.data.sniff import conll_first_sentence_problem
from seqtool.data.tags import iob1_to_bio
from seqtool.data.streams import check_encoding, decoded_lines, inner_name, open_stream, utf8_lines
from seqtool.data.tabular import iter_table

EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
              ".conll": "conll", ".bio": "conll", ".iob": "conll", ".iob1": "conll", ".iob2": "conll",
              ".txt": "text", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}
DOCSTART = "-DOCSTART-"

Lines = Iterable[tuple[int, bytes]]


def guess_format(path: str) -> str:
    """The format of a path from its extension (see the module doc); stdin is jsonl."""
    if path == STDIN:
        return "jsonl"
    return EXTENSIONS.get(os.path.splitext(inner_name(path))[1].lower(), "jsonl")


@dataclass(frozen=True)
class Reading:
    """How to read an input: the format (None: from the extension) and the options of the text formats."""

    format: str | None = None
    encoding: str | None = None      # None: UTF-8, or UTF-16 when a byte-order mark says so
    columns: str | None = None       # csv/tsv: "key=column,..." (a header name or a number from 1)
    header: bool = True              # csv/tsv: the first row names the columns
    quotes: bool = True              # csv/tsv: "..." quotes fields (off: quote characters are text)

    @classmethod
    def of(cls, fmt: "str | Reading | None") -> "Reading":
        return fmt if isinstance(fmt, Reading) else cls(format=fmt)

    @classmethod
    def from_options(cls, opts: dict) -> "Reading | str | None":
        """Pop the reading options (format, encoding, columns, header, quotes) from ``opts``: a plain
        format name when only that was given (what the stages took before), else a Reading."""
        reading = cls(format=opts.pop("format", None), encoding=opts.pop("encoding", None),
                      columns=opts.pop("columns", None), header=opts.pop("header", True),
                      quotes=opts.pop("quotes", True))
        return reading if reading != cls(format=reading.format) else reading.format

    def check(self) -> None:
        """Usage errors for options that do not go together, before anything is read."""
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(f"unknown format {self.format!r} (expected one of {', '.join(FORMATS)})")
        check_encoding(self.encoding)
        tabular = self.format in (None, "csv", "tsv")     # None: decided by the extension
        if not tabular and (self.columns or not self.header or not self.quotes):
            raise UsageError("--columns, --no-header and --no-quotes are for --format csv or tsv")


def _column_index(column: int, option: str) -> int:
    """A column number counted from 1 (negative: from the end, -1 = last) -> a Python index."""
    if column == 0:
        raise UsageError(f"{option} counts from 1 (or from -1 for the last column), not 0")
    return column - 1 if column > 0 else column


def iter_conll(lines: Lines, reject: InvalidRecords, token_column: int = 1,
               tag_column: int = -1, explicit: bool = True) -> Iterator[tuple[int, dict]]:
    """(first line, {"tokens": [...], "tags": [...]}) per sentence; ``tag_column=0``: no tags.

    A bad line drops its whole sentence (once ``reject`` has let it go). An input that is
    not CoNLL columns at all (JSON, plain text: sniff.py) stops at its first sentence with
    the format it looks like; ``explicit``: --format conll was given (else the extension chose it).
    """
    tok_i = _column_index(token_column, "--token-column")
    tag_i = None if tag_column == 0 else _column_index(tag_column, "--tag-column")
    need = max(i + 1 if i >= 0 else -i for i in (tok_i, tag_i) if i is not None)
    tokens, tags, start, bad = [], [], 0, False
    first_rows: list | None = []          # the first sentence's lines, until it is checked
    for lineno, raw in chain(lines, [(0, b"\n")]):  # a last blank line ends the last sentence
        try:
            cols = decode_line(raw).split()
            if cols and cols[0] != DOCSTART:
                if first_rows is not None:
                    first_rows.append(cols)
                    if len(first_rows) == 1:   # a JSON line fails the column checks below: look first
                        _check_first_sentence(first_rows, None, explicit, reject.name, lineno)
                if len(cols) < need:
                    raise DataError(f"expected at least {need} columns, found {len(cols)}")
                if tag_i is not None and tok_i % len(cols) == tag_i % len(cols):
                    raise DataError(f"the token and the tag would both be column {tok_i % len(cols) + 1} "
                                    "(use --tag-column 0 for a file without tags)")
                tokens.append(cols[tok_i])
                if tag_i is not None:
                    tags.append(cols[tag_i])
                start = start or lineno
                continue
        except DataError as e:
            bad = True
            reject(e, lineno)
            continue
        if first_rows:
            _check_first_sentence(first_rows, tag_i, explicit, reject.name, start)
            first_rows = None
        if tokens and not bad:
            record = {"tokens": tokens}
            if tag_i is not None:
                record["tags"] = iob1_to_bio(tags)
            yield start, record
        tokens, tags, start, bad = [], [], 0, False


def _check_first_sentence(rows: list, tag_i: int | None, explicit: bool, name: str, line: int) -> None:
    rows = [r for r in rows if tag_i is None or len(r) > max(tag_i, -tag_i - 1)]
    problem = conll_first_sentence_problem(rows, tag_i, explicit) if rows else None
    if problem:
        raise UsageError(problem, name, line)


def iter_text(lines: Lines, reject: InvalidRecords) -> Iterator[tuple[int, dict]]:
    """(line, {"text": line}) for every line: a blank one gives ``{"text": ""}``, so that a stage's
    output lines match its input lines one to one."""
    return reject.mapped(lines, lambda raw: {"text": decode_line(raw).strip()})


def is_blank(record: dict) -> bool:
    """A record of nothing to read: a blank line of text (``{"text": ""}``) or ``{"tokens": []}``.
    ``tag`` passes it through unpredicted, so that output lines still match input lines."""
    if "q1" in record or "q2" in record:
        return False
    tokens, text = record.get("tokens"), record.get("text")
    if tokens is not None:
        return tokens == []
    return isinstance(text, str) and not text.strip()


def with_blanks(records: list[dict], results: list, blank) -> list:
    """``results`` (one per record with tokens) spread over ``records``: ``blank`` for those without."""
    found = iter(results)
    return [next(found) if r["tokens"] else blank for r in records]


class Source:
    """The records of one input (a path or ``-``) in one format, with their line numbers.

    Iterating opens the input and yields ``(line, record)``; ``map(fn)`` yields
    ``fn(record)``. Records that break the contract go to ``self.reject``
    (stop with the location, or count them when ``skip_invalid``).
    """

    def __init__(self, path: str = STDIN, fmt: "str | Reading | None" = None, *, token_column: int = 1,
                 tag_column: int = -1, skip_invalid: bool = False):
        self.reading = Reading.of(fmt)
        self.reading.check()
        self.path = path
        self.fmt = self.reading.format or guess_format(path)
        self.reject = InvalidRecords(source_name(path), skip_invalid)
        self._columns = (token_column, tag_column)

    @property
    def name(self) -> str:
        """The input's name in messages; settable (e.g. ``<stdin>`` for a saved copy of stdin)."""
        return self.reject.name

    @name.setter
    def name(self, value: str) -> None:
        self.reject.name = value

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        with open_stream(self.path) as stream:
            try:
                yield from self.read(stream)
            except SeqtoolError as e:
                if e.path is None:      # raised below the reader (decoding): locate it in this input
                    raise type(e)(e.message, self.name, e.line) from None
                raise

    def read(self, stream) -> Iterator[tuple[int, dict]]:
        """(line, record) from an open binary stream, by the format's reader."""
        encoding = self.reading.encoding
        if self.fmt in ("csv", "tsv"):
            return iter_table(decoded_lines(stream, encoding), self.reject, self.fmt, self.reading.columns,
                              header=self.reading.header, quotes=self.reading.quotes)
        return self.read_lines(utf8_lines(stream, encoding))

    def read_lines(self, lines: Lines) -> Iterator[tuple[int, dict]]:
        """(line, record) from numbered UTF-8 lines, by a line format's reader."""
        if self.fmt == "conll":
            return iter_conll(lines, self.reject, *self._columns, explicit=self.reading.format is not None)
        if self.fmt == "text":
            return iter_text(lines, self.reject)
        if self.fmt == "fasttext":
            return iter_fasttext(lines, self.reject)
        return iter_jsonl(lines, self.reject)

    def map(self, fn: Callable[[dict], dict]) -> Iterator[dict]:
        """``fn(record)`` for every record; a DataError from ``fn`` is rejected at the record's line."""
        return (out for _, out in self.map_numbered(fn))

    def map_numbered(self, fn: Callable[[dict], dict]) -> Iterator[tuple[int, dict]]:
        """(line, ``fn(record)``) for every record, as ``map``."""
        return self.reject.mapped(self, fn)
