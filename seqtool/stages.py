"""The stages behind the commands: plain functions that the CLI and the YAML runner both call.

Each stage reads its input through a ``readers.Source``, writes records to a
binary stream (stdout by default) and returns a ``Report``: a summary line and
warnings for stderr. Errors are raised as SeqtoolError for the caller to print.
Keyword names are the command-line option names.
"""
import sys
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

from seqtool.batching import GROUPS, check_ids, pad_records, seq_length
from seqtool.errors import DataError, UsageError
from seqtool.jsonl import dumps, parse_record, write_records
from seqtool.readers import Source
from seqtool.vocab import Counts, Vocab, prepare


@dataclass
class Report:
    """What a stage has to say on stderr: the summary (silenced by -q) and warnings (always shown)."""

    summary: str
    warnings: list[str] = field(default_factory=list)


def _progress(records: Iterable, enabled: bool | None, desc: str) -> Iterable:
    """``records`` with a tqdm bar on stderr: when ``enabled``, or (None) when stderr is a terminal."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return records  # without importing tqdm (40 ms) in the usual piped case
    from tqdm import tqdm

    return tqdm(records, desc=desc, unit=" records", file=sys.stderr, leave=False)


def _warnings(src: Source, *more: str | None) -> list[str]:
    return [w for w in (src.reject.warning(), *more) if w]


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
        n = write_records(_progress(src.map(saved.encode), progress, "vocab"), out)
        return Report(f"{n} records, ids from {vocab}", _warnings(src))
    counts = Counts()
    with tempfile.TemporaryFile() as spill:
        for record in _progress(src.map(prepare), progress, "counting"):
            counts.add(record)
            spill.write((dumps(record) + "\n").encode())
        if not counts.records:
            raise DataError("no records", src.name)
        built = counts.vocab(min_count=min_count, max_size=max_size, lowercase=lowercase,
                             char_min_count=char_min_count)
        built.to_json(output)
        spill.seek(0)
        n = write_records(_progress(map(built.add_ids, map(parse_record, spill)), progress, "writing"), out)
    summary = (f"{n} records; {len(built.words)} words, {len(built.tags)} tags, {len(built.labels)} labels, "
               f"{len(built.chars)} characters -> {output}")
    return Report(summary, _warnings(src))


def run_pad(input: str = "-", out: BinaryIO | None = None, *, batch_size: int = 32, bucket: int = 0,
            length: int | None = None, skip_invalid: bool = False, progress: bool | None = None) -> Report:
    """Pad the id sequences of ``input`` (the output of vocab) batch by batch; write them to ``out``.

    Streams: memory holds one batch, or ``bucket`` batches when bucketing.
    """
    if batch_size < 1 or bucket < 0 or (length is not None and length < 1):
        raise UsageError("--batch-size and --length must be at least 1, --bucket at least 0")
    out = out or sys.stdout.buffer
    src = Source(input, "jsonl", skip_invalid=skip_invalid)
    truncated = 0

    def check(record: dict) -> dict:
        nonlocal truncated
        record = check_ids(record)
        if length is not None and seq_length(record) > length:
            truncated += 1
        return record

    stats = _PadStats()
    padded = pad_records(src.map(check), batch_size, bucket, length)
    n = write_records(_progress(stats.count(padded), progress, "pad"), out)
    summary = f"{n} records in {stats.batches} batches; {stats.padding():.1%} of the positions are padding"
    cut = f"truncated {truncated} records to {length} tokens" if truncated else None
    return Report(summary, _warnings(src, cut))


class _PadStats:
    """Batches and padded positions seen in the records going out."""

    def __init__(self):
        self.batches = self.real = self.cells = 0

    def count(self, records: Iterable[dict]) -> Iterator[dict]:
        for record in records:
            self.batches = record["batch"] + 1
            for group in GROUPS:
                mask = record.get(group.mask)
                if mask is not None:
                    self.cells += len(mask)
                    self.real += record[group.length]
            yield record

    def padding(self) -> float:
        return 1 - self.real / self.cells if self.cells else 0.0
