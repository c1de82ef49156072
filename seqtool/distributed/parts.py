"""Partitions for ``--dask``: input files cut into byte ranges that workers read on their own.

A partition is (file, start, end): JSONL and text files are cut at line starts,
CoNLL files just after a blank line, so no record is ever split.

Batches. A model's output for a record can differ in the last bit with the other
records of its batch (the kernels block rows), so the workers must batch records
exactly as one process does: ``batch_size`` consecutive records from the start
of each file. A first pass counts each partition's records (``count_part``);
then each task takes the batches that *start* in its partition (``aligned``):
it skips the records of its partition that finish the batch before, and reads on
past its end to finish its last batch. Those tasks are numbered again, in
order: part file ``part-00000.jsonl`` holds task 0's output, and concatenating
the parts gives the input order, the same bytes as ``seqtool tag`` on each file.

``PartSource`` reads one partition as a ``readers.Source`` reads a whole file,
so the stages' record functions run unchanged on it. Its line numbers count
from the partition's first line; ``locate`` turns an error's line into the
file's own (counting the newlines before the partition, on the error path only).
"""
import codecs
import glob
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from seqtool.errors import SeqtoolError, UsageError
from seqtool.data.jsonl import STDIN
from seqtool.data.readers import Reading, Source, guess_format
from seqtool.data.streams import compression

DASK_FORMATS = ("jsonl", "conll", "text", "fasttext")

MIN_PART = 64 * 1024          # bytes: smaller partitions cost more in scheduling than they save
MAX_PART = 64 * 1024 * 1024   # bytes: one partition's output is held by a task (and the client, without -o)
_PART_FILE = re.compile(r"\.?part-\d{5,}\.(jsonl|conll)(\.tmp-[0-9]+-[0-9a-f]+)?")


@dataclass(frozen=True)
class Part:
    index: int      # global number: the order of the output (and the part file's number)
    path: str
    fmt: str
    start: int      # byte offset of the first line
    end: int        # byte offset just after the last line
    skip: int = 0              # aligned: records (valid ones) at the start that belong to the batch before
    take: int | None = None    # aligned: records to process from there on, reading past ``end`` if need be
    base: int = 0              # aligned: the file's number of records before the first one taken

    def file_name(self, ext: str) -> str:
        return f"part-{self.index:05d}.{ext}"


def expand_inputs(inputs) -> list[str]:
    """Files named or matched by ``inputs`` (globs sorted), in order; UsageError for stdin or no match."""
    files = []
    for pattern in [inputs] if isinstance(inputs, str) else inputs or [STDIN]:
        if pattern == STDIN:
            raise UsageError("--dask reads files (each worker opens its own partitions), not stdin: give INPUT paths")
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise UsageError("no file matches", pattern)
        for path in matches:
            if not os.path.isfile(path):
                raise UsageError("is a directory" if os.path.isdir(path) else "No such file or directory", path)
            files.append(path)
    return files


def part_size(files: list[str], workers: int) -> int:
    """Partition size: about four partitions per worker (so a slow one does not hold the others back),
    between MIN_PART and MAX_PART bytes."""
    total = sum(os.path.getsize(p) for p in files)
    return max(MIN_PART, min(MAX_PART, total // max(1, 4 * workers) + 1))


def aligned(parts: list[Part], counts: list[int], batch_size: int) -> list[Part]:
    """The tasks that own the batches of ``batch_size`` records starting in each partition (see the module doc).

    ``counts``: each partition's records. A partition in which no batch starts gets no task.
    """
    totals: dict[str, int] = {}
    for p, c in zip(parts, counts):
        totals[p.path] = totals.get(p.path, 0) + c
    out, before, path = [], 0, None
    for p, c in zip(parts, counts):
        before = 0 if p.path != path else before
        path = p.path
        first = -(-before // batch_size) * batch_size            # the first batch start at or after it
        if first < before + c:
            last = (before + c - 1) // batch_size * batch_size   # the last batch start in it
            end = min(totals[p.path], last + batch_size)
            out.append(replace(p, index=len(out), skip=first - before, take=end - first, base=first))
        before += c
    return out


def dask_format(fmt) -> str | None:
    """The format name the partitions are read in: a line format in UTF-8 only (a byte range of a CSV
    file may cut a quoted field, of a compressed or UTF-16 file is not text); the rest a UsageError."""
    reading = Reading.of(fmt)
    reading.check()
    if reading.format not in (None, *DASK_FORMATS) or reading != Reading(format=reading.format):
        raise UsageError(f"--dask reads {', '.join(DASK_FORMATS)} files in UTF-8: "
                         "convert the input first (seqtool convert FILE --to jsonl)")
    return reading.format


def plan(files: list[str], fmt: str | None, size: int) -> list[Part]:
    """Every file cut into partitions of about ``size`` bytes, numbered in input order."""
    fmt = dask_format(fmt)
    parts = []
    for path in files:
        kind = fmt or guess_format(path)
        if kind not in DASK_FORMATS or compression(path):
            raise UsageError(f"--dask reads uncompressed {', '.join(DASK_FORMATS)} files: "
                             "convert it first (seqtool convert FILE --to jsonl)", path)
        total = os.path.getsize(path)
        with open(path, "rb") as f:
            start = 0
            while start < total:
                end = total if start + size >= total else _boundary(f, start + size, kind)
                parts.append(Part(len(parts), path, kind, start, end))
                start = end
    return parts


def _boundary(f, offset: int, fmt: str) -> int:
    """The first cut at or after ``offset``: a line start; for CoNLL, the line after a blank line."""
    f.seek(offset - 1)
    f.readline()                  # through the newline at or after offset - 1: f is at a line start
    if fmt != "conll":
        return f.tell()
    for line in iter(f.readline, b""):
        if line.isspace():
            return f.tell()
    return f.tell()               # end of file


def read_range(path: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(line number counted from the range's first line, raw line) for the lines in [start, end)."""
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        for lineno, raw in enumerate(iter(f.readline, b""), 1):
            if pos >= end:
                break
            if pos == 0 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]      # the file's first line: drop a byte-order mark
                pos += len(codecs.BOM_UTF8)
            pos += len(raw)
            yield lineno, raw


class PartSource(Source):
    """The records of one partition, as ``Source`` yields a whole file's (lines counted from the partition's
    start); for an aligned part, ``map`` yields its ``take`` records after ``skip``, reading on past its end."""

    def __init__(self, part: Part, *, skip_invalid: bool = False):
        super().__init__(part.path, part.fmt, skip_invalid=skip_invalid)
        self.part = part

    def map_numbered(self, fn):
        records = super().map_numbered(fn)       # Source.map reads through this too
        if self.part.take is None:
            return records
        return itertools.islice(records, self.part.skip, self.part.skip + self.part.take)

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        end = self.part.end if self.part.take is None else os.path.getsize(self.part.path)
        yield from self.read_lines(read_range(self.part.path, self.part.start, end))


def lines_before(path: str, offset: int) -> int:
    """Newlines in the first ``offset`` bytes of ``path``."""
    count = 0
    with open(path, "rb") as f:
        while offset > 0:
            chunk = f.read(min(offset, 1 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset -= len(chunk)
    return count


def locate(error: SeqtoolError, part: Part) -> SeqtoolError:
    """``error`` with a partition-relative line of ``part``'s file made the file's line."""
    if error.line is not None and error.path == part.path and part.start > 0:
        return type(error)(error.message, error.path, error.line + lines_before(part.path, part.start))
    return error


def clear_parts(out_dir: str, temporaries: bool = False) -> None:
    """Remove the part files in ``out_dir`` and the temporaries of killed tasks (only those: ``temporaries``)."""
    for entry in os.listdir(out_dir):
        match = _PART_FILE.fullmatch(entry)
        if match and (match.group(2) or not temporaries):
            try:
                os.unlink(os.path.join(out_dir, entry))
            except FileNotFoundError:
                pass


def prepare_dir(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
        clear_parts(out_dir)
    except OSError as e:
        raise UsageError(f"cannot write: {e.strerror or e}", out_dir) from None

