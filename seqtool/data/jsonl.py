"""JSON Lines in and out: the stream format every stage reads and writes.

Input comes from a path or ``-`` (stdin; opened by streams.py), one line at a time and as bytes, so a
line that is not UTF-8 is reported with its number instead of stopping a
decoder mid-file. Blank lines are skipped. Output is one compact JSON object
per line, UTF-8, non-ASCII characters written as they are.

A record that breaks the contract goes to an ``InvalidRecords`` policy: it
either stops the stage with ``<file>:<line>: <what is wrong>`` or, with
``--skip-invalid``, is counted and dropped.
"""
import json
import os
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterable, Iterator

from seqtool.data.sniff import not_json_hint
from seqtool.wording import plural
from seqtool.data.streams import encoding_message, open_stream, utf8_lines
from seqtool.errors import DataError, UsageError

STDIN = "-"
STDIN_NAME = "<stdin>"

# One encoder for the whole run: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode = json.JSONDecoder().decode

_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
          bool: "true/false", type(None): "null"}


def source_name(path: str) -> str:
    """The name messages use for an input: the path, or ``<stdin>`` for ``-``."""
    return STDIN_NAME if path == STDIN else path


open_input = open_stream   # the one way an input is opened: a path or -, decompressed (streams.py)


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, raw line) for every line, a UTF-8 byte-order mark dropped."""
    return utf8_lines(stream, "utf-8")


def decode_line(raw: bytes) -> str:
    """The text of one raw line; DataError naming the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(encoding_message(raw, e, "utf-8")) from None


def parse_record(raw: bytes) -> dict:
    """One raw JSONL line -> its JSON object; DataError if it is not one."""
    text = decode_line(raw.rstrip(b"\r\n"))  # without the line end, errors point into the line
    try:
        record = _decode(text)
    except ValueError as e:
        raise DataError(f"not valid JSON: {e.msg.removesuffix(' at')} at column {e.colno}") from None
    if type(record) is not dict:
        raise DataError(f"expected a JSON object, found {_KINDS.get(type(record), 'a value')}")
    return record


class InvalidRecords:
    """What happens to a record that breaks the contract.

    Called with the error and the record's line: raises the error located at
    ``<name>:<line>``, or with ``skip=True`` counts it, keeps the first one for
    the closing warning, and returns so the reader goes on.
    """

    def __init__(self, name: str, skip: bool = False):
        self.name = name
        self.skip = skip
        self.count = 0
        self.first: DataError | None = None

    def __call__(self, error: DataError, line: int) -> None:
        located = DataError(error.message, self.name, line)
        if not self.skip:
            raise located
        self.count += 1
        if self.first is None:
            self.first = located

    def mapped(self, numbered: Iterable[tuple[int, object]], fn) -> Iterator[tuple[int, object]]:
        """(line, ``fn(item)``) for every (line, item) of ``numbered``: an item whose ``fn`` raises a
        DataError is rejected at its line (stop there, or count it and go on with --skip-invalid).
        The one skip-the-bad-record loop of the readers and of ``Source.map``."""
        for lineno, item in numbered:
            try:
                out = fn(item)
            except DataError as e:
                self(e, lineno)
                continue
            yield lineno, out

    def warning(self) -> str | None:
        """The line for stderr at the end, or None when nothing was skipped."""
        if not self.count:
            return None
        return f"skipped {plural(self.count, 'invalid record')} (first: {self.first})"


def iter_jsonl(lines: Iterable[tuple[int, bytes]], reject: InvalidRecords) -> Iterator[tuple[int, dict]]:
    """(line number, record) for every non-blank line; bad lines go to ``reject``.

    A first line that is no JSON at all but looks like another format stops the
    reading (even with --skip-invalid) with the format it looks like.
    """
    lines = iter((n, raw) for n, raw in lines if not raw.isspace())
    first = next(lines, None)
    if first is None:
        return

    def parse_first(raw: bytes) -> dict:
        try:
            return parse_record(raw)
        except DataError:
            hint = not_json_hint(raw)      # no JSON at all: say what it looks like, even with --skip-invalid
            if hint:
                raise UsageError(hint, reject.name, first[0]) from None
            raise

    yield from reject.mapped([first], parse_first)
    yield from reject.mapped(lines, parse_record)


def dumps(record: dict) -> str:
    """One record as a compact JSON line (no newline)."""
    return _encode(record)


def write_records(records: Iterable[dict], out: BinaryIO) -> int:
    """Write each record as one UTF-8 line, flush, and return how many were written."""
    count = 0
    write = out.write
    for record in records:
        write((_encode(record) + "\n").encode())
        count += 1
    out.flush()
    return count


@contextmanager
def replacing(path: str, tmp: str):
    """A binary file at ``tmp`` for the ``with`` block, fsynced and renamed over ``path`` when the block
    ends normally; on any failure ``tmp`` is removed and ``path`` keeps what it had."""
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` all at once: a temporary file beside it, fsync, os.replace.

    A reader never sees half a file, and a failed write leaves the old one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a vocabulary is as readable as any file
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise UsageError(f"cannot write: {e.strerror or e}", path) from None
        raise
