"""Records written in the formats seqtool reads: JSONL, CoNLL columns, fastText lines, CSV and TSV.

What ``seqtool convert --to`` writes, streaming, one record at a time:
  jsonl     the record as it is
  conll     ``token tag`` per line (``token`` alone without tags), a blank line after each sentence;
            records with text and no tokens are tokenized as the stages tokenize them
  fasttext  ``__label__x text`` (fasttext.py)
  csv, tsv  records with text or q1/q2: one row each, the first record's keys as the header (lists and
            objects as JSON); token records: one token per row under ``sentence,token,tag``, the
            sentence column filled on every row (its ``sentence`` or ``id``, else its number)
Reading any of these back gives the records again (CoNLL and JSONL: the same records).
"""
import csv
import io
import json
from typing import BinaryIO, Callable

from seqtool.data.fasttext import example_line
from seqtool.data.jsonl import dumps
from seqtool.data.tokenize import tokenize
from seqtool.errors import DataError



def tokens_of(record: dict) -> list:
    """A record's tokens: given, or its text tokenized."""
    if record.get("tokens") is not None:
        return record["tokens"]
    if record.get("text") is not None:
        return tokenize(record["text"])
    raise DataError('CoNLL columns need "tokens" or "text"')


def conll_lines(record: dict) -> str:
    tokens = tokens_of(record)
    tags = record.get("tags")
    if tags is not None and len(tags) != len(tokens):
        raise DataError(f'"tags" has {len(tags)} items but "tokens" has {len(tokens)}')
    rows = [f"{t} {g}" for t, g in zip(tokens, tags)] if tags is not None else list(tokens)
    if any(" " in t or not t for t in tokens):
        raise DataError("a token that is empty or holds a space cannot be a CoNLL column")
    return "".join(row + "\n" for row in rows) + "\n"


class TableWriter:
    """CSV/TSV rows for a stream of records, the layout and header set by the first record."""

    def __init__(self, fmt: str):
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, dialect="excel-tab" if fmt == "tsv" else "excel", lineterminator="\n")
        self.keys: list | None = None
        self.per_token = False
        self.count = 0

    def __call__(self, record: dict) -> str:
        self.count += 1
        if self.keys is None:
            self.per_token = record.get("tokens") is not None and not {"text", "q1"} & record.keys()
            self.keys = ["sentence", "token", "tag"] if self.per_token else list(record)
            self.writer.writerow(self.keys)
        if self.per_token:
            name = record.get("sentence", record.get("id", self.count))
            tags = record.get("tags") or [""] * len(record["tokens"])
            for token, tag in zip(record["tokens"], tags):
                self.writer.writerow([name, token, tag])
        else:
            extra = [k for k in record if k not in self.keys]
            if extra:
                raise DataError(f"key {extra[0]!r} is not a column (the header comes from the first record: "
                                f"{', '.join(self.keys)})")
            self.writer.writerow([_cell(record.get(k)) for k in self.keys])
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def _cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def line_writer(fmt: str) -> Callable[[dict], str]:
    """The function that turns one record into its text in ``fmt`` (line end included)."""
    if fmt == "jsonl":
        return lambda record: dumps(record) + "\n"
    if fmt == "conll":
        return conll_lines
    if fmt == "fasttext":
        return example_line
    return TableWriter(fmt)


def write_as(src, out: BinaryIO, fmt: str) -> int:
    """Write every record of ``src`` (a readers.Source) in ``fmt``; a record the format cannot hold is
    rejected at its line, as a bad input record is."""
    count = 0
    for text in src.map(line_writer(fmt)):
        out.write(text.encode("utf-8"))
        count += 1
    out.flush()
    return count
