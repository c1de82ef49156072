"""The ``vocab`` stage: build a vocabulary (or apply a saved one) and add ids to every record."""
import sys
import tempfile
from typing import BinaryIO

from seqtool.data.jsonl import dumps, parse_record, write_records
from seqtool.data.readers import Source
from seqtool.data.vocab import Counts, Vocab, prepare
from seqtool.errors import DataError, UsageError
from seqtool.stages.base import Report, progress_bar, source_warnings
from seqtool.wording import plural


def run_vocab(input: str = "-", out: BinaryIO | None = None, *, output: str | None = None,
              vocab: str | None = None, format: str | None = None, token_column: int = 1,
              tag_column: int = -1, min_count: int = 1, max_size: int | None = None,
              char_min_count: int = 1, lowercase: bool = False, skip_invalid: bool = False,
              progress: bool | None = None) -> Report:
    """Build a vocabulary from ``input`` and save it to ``output``, or apply the saved ``vocab``;
    write every record with its ids to ``out``.

    Building reads the whole input before the first record goes out; the records
    wait in an unnamed temporary file, not in memory. Applying streams.
    """
    if output is None and vocab is None:
        raise UsageError("give -o FILE to build a vocabulary, or --vocab FILE to apply a saved one")
    if output is not None and vocab is not None:
        raise UsageError("-o builds a vocabulary and --vocab applies one: give one of them")
    out = out or sys.stdout.buffer
    src = Source(input, format, token_column=token_column, tag_column=tag_column, skip_invalid=skip_invalid)
    if vocab is not None:
        saved = Vocab.from_json(vocab)
        n = write_records(progress_bar(src.map(saved.encode), progress, "vocab"), out)
        return Report(f"{plural(n, 'record')}, ids from {vocab}", source_warnings(src))
    counts = Counts()
    with tempfile.TemporaryFile() as spill:
        for record in progress_bar(src.map(prepare), progress, "counting"):
            counts.add(record)
            spill.write((dumps(record) + "\n").encode())
        if not counts.records:
            raise DataError("no records", src.name)
        built = counts.vocab(min_count=min_count, max_size=max_size, lowercase=lowercase,
                             char_min_count=char_min_count)
        built.to_json(output)
        spill.seek(0)
        n = write_records(progress_bar(map(built.add_ids, map(parse_record, spill)), progress, "writing"), out)
    summary = (f"{plural(n, 'record')}; {plural(len(built.words), 'word')}, {plural(len(built.tags), 'tag')}, "
               f"{plural(len(built.labels), 'label')}, {plural(len(built.chars), 'character')} -> {output}")
    return Report(summary, source_warnings(src))
