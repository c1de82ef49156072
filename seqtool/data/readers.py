"""Input formats: JSONL, CoNLL column files and plain text, all read as records.

``Source(path, fmt)`` is what a stage reads: it opens a path or ``-``, picks
the reader for the format (given, or guessed from the file extension), and
yields ``(line number, record)`` pairs. ``Source.map(fn)`` applies a per-record
function and reports a ``DataError`` it raises at the record's line, so every
stage gets the same ``<file>:<line>: <message>`` errors and ``--skip-invalid``.

Formats:
  jsonl  one JSON object per line (the default, and always for stdin)
  conll  whitespace-separated columns, one token per line; a blank line or a
         ``-DOCSTART-`` line ends a sentence; -> {"tokens": [...], "tags": [...]}
         with IOB1 tags converted to IOB2 (BIO); a record's line is its first token's
  text   one example per line -> {"text": "..."} (surrounding whitespace stripped)

Extensions: .conll .bio .iob .iob1 .iob2 -> conll; .txt -> text; anything else -> jsonl.
"""
import os
from itertools import chain
from typing import Callable, Iterable, Iterator

from seqtool.errors import DataError, UsageError
from seqtool.data.jsonl import (STDIN, InvalidRecords, decode_line, iter_jsonl, open_input,
                           read_lines, source_name)

FORMATS = ("jsonl", "conll", "text")
EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
              ".conll": "conll", ".bio": "conll", ".iob": "conll", ".iob1": "conll", ".iob2": "conll",
              ".txt": "text"}
DOCSTART = "-DOCSTART-"

Lines = Iterable[tuple[int, bytes]]


def guess_format(path: str) -> str:
    """The format of a path from its extension (see the module doc); stdin is jsonl."""
    if path == STDIN:
        return "jsonl"
    return EXTENSIONS.get(os.path.splitext(path)[1].lower(), "jsonl")


def iob1_to_bio(tags: list[str]) -> list[str]:
    """IOB1 tags -> IOB2: an ``I-X`` that does not continue an X entity becomes ``B-X``.

    IOB2 input comes back unchanged; tags without a B-/I- prefix are left alone.
    """
    out = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            out.append("B-" + tag[2:])
        else:
            out.append(tag)
        prev = tag
    return out


def _column_index(column: int, option: str) -> int:
    """A column number counted from 1 (negative: from the end, -1 = last) -> a Python index."""
    if column == 0:
        raise UsageError(f"{option} counts from 1 (or from -1 for the last column), not 0")
    return column - 1 if column > 0 else column


def iter_conll(lines: Lines, reject: InvalidRecords, token_column: int = 1,
               tag_column: int = -1) -> Iterator[tuple[int, dict]]:
    """(first line, {"tokens": [...], "tags": [...]}) per sentence; ``tag_column=0``: no tags.

    A bad line drops its whole sentence (once ``reject`` has let it go).
    """
    tok_i = _column_index(token_column, "--token-column")
    tag_i = None if tag_column == 0 else _column_index(tag_column, "--tag-column")
    need = max(i + 1 if i >= 0 else -i for i in (tok_i, tag_i) if i is not None)
    tokens, tags, start, bad = [], [], 0, False
    for lineno, raw in chain(lines, [(0, b"\n")]):  # a last blank line ends the last sentence
        try:
            cols = decode_line(raw).split()
            if cols and cols[0] != DOCSTART:
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
        if tokens and not bad:
            record = {"tokens": tokens}
            if tag_i is not None:
                record["tags"] = iob1_to_bio(tags)
            yield start, record
        tokens, tags, start, bad = [], [], 0, False


def iter_text(lines: Lines, reject: InvalidRecords) -> Iterator[tuple[int, dict]]:
    """(line, {"text": line}) for every non-blank line."""
    for lineno, raw in lines:
        try:
            text = decode_line(raw).strip()
        except DataError as e:
            reject(e, lineno)
            continue
        if text:
            yield lineno, {"text": text}


class Source:
    """The records of one input (a path or ``-``) in one format, with their line numbers.

    Iterating opens the input and yields ``(line, record)``; ``map(fn)`` yields
    ``fn(record)``. Records that break the contract go to ``self.reject``
    (stop with the location, or count them when ``skip_invalid``).
    """

    def __init__(self, path: str = STDIN, fmt: str | None = None, *, token_column: int = 1,
                 tag_column: int = -1, skip_invalid: bool = False):
        if fmt is not None and fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
        self.path = path
        self.fmt = fmt or guess_format(path)
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
        with open_input(self.path) as stream:
            lines = read_lines(stream)
            if self.fmt == "conll":
                yield from iter_conll(lines, self.reject, *self._columns)
            elif self.fmt == "text":
                yield from iter_text(lines, self.reject)
            else:
                yield from iter_jsonl(lines, self.reject)

    def map(self, fn: Callable[[dict], dict]) -> Iterator[dict]:
        """``fn(record)`` for every record; a DataError from ``fn`` is rejected at the record's line."""
        return (out for _, out in self.map_numbered(fn))

    def map_numbered(self, fn: Callable[[dict], dict]) -> Iterator[tuple[int, dict]]:
        """(line, ``fn(record)``) for every record, as ``map``."""
        reject = self.reject
        for lineno, record in self:
            try:
                out = fn(record)
            except DataError as e:
                reject(e, lineno)
                continue
            yield lineno, out
