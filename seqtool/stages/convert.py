"""The ``convert`` stage: records from any readable format written in any writable one, streaming.

Reading takes the options every stage takes (format, encoding, CSV column
mapping, compressed input: readers.Source); writing is data/writers.py. A
record the target format cannot hold (a CoNLL token with a space, a CSV row with
a key the header lacks) is an error at its line, or skipped with --skip-invalid.
"""
import sys
from typing import BinaryIO

from seqtool.data.readers import Reading, Source
from seqtool.data.formats import WRITE_FORMATS
from seqtool.data.writers import write_as
from seqtool.errors import UsageError
from seqtool.wording import plural
from seqtool.stages.base import Report, source_warnings


def run_convert(input: str = "-", out: BinaryIO | None = None, *, to: str = "jsonl",
                format: "str | Reading | None" = None, token_column: int = 1, tag_column: int = -1,
                skip_invalid: bool = False) -> Report:
    """Write every record of ``input`` to ``out`` in the format ``to``."""
    if to not in WRITE_FORMATS:
        raise UsageError(f"unknown --to {to!r} (expected one of {', '.join(WRITE_FORMATS)})")
    out = out or sys.stdout.buffer
    src = Source(input, format, token_column=token_column, tag_column=tag_column, skip_invalid=skip_invalid)
    n = write_as(src, out, to)
    return Report(f"{plural(n, 'record')} {src.fmt} -> {to}", source_warnings(src))
