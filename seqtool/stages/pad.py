"""The ``pad`` stage: group id'd records into batches and pad every id sequence to the batch's longest."""
import sys
from typing import BinaryIO, Iterable, Iterator

from seqtool.data.batching import GROUPS, check_ids, pad_records, seq_length
from seqtool.data.jsonl import write_records
from seqtool.data.readers import Source
from seqtool.errors import UsageError
from seqtool.stages.base import Report, progress_bar, source_warnings
from seqtool.wording import plural


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
    n = write_records(progress_bar(stats.count(padded), progress, "pad"), out)
    summary = (f"{plural(n, 'record')} in {plural(stats.batches, 'batch', 'batches')}; "
               f"{stats.padding():.1%} of the positions are padding")
    cut = f"truncated {plural(truncated, 'record')} to {plural(length, 'token')}" if truncated else None
    return Report(summary, source_warnings(src, cut))


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
