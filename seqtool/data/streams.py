"""Opening an input where it lives: compressed or not, in whatever encoding, as numbered lines.

``open_stream(path)`` gives the binary stream of a path or ``-``, decompressed
on the fly: ``.gz``, ``.bz2``, ``.xz`` and a single-member ``.zip`` by their
suffix (stdin: gzip, bzip2 and xz by their magic bytes). Nothing is copied
to a temporary file; the decompressors read a block at a time.

``utf8_lines(stream, encoding)`` gives ``(line number, raw line)`` pairs in
UTF-8, the form the JSONL, CoNLL, text and fastText readers take: UTF-8 input
passes through untouched (a bad byte is reported at its line by the reader),
other encodings are decoded a line at a time and re-encoded. With the default
encoding a UTF-16 byte-order mark is recognised and the file read as UTF-16.
``text_stream`` is the decoded stream for the csv module.
"""
import bz2
import codecs
import gzip
import io
import lzma
import os
import sys
import zipfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from seqtool.errors import DataError, UsageError

STDIN = "-"
COMPRESSED = (".gz", ".bz2", ".xz", ".zip")
# Each takes the open compressed stream (``gzip.open`` and friends also take file objects).
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_MAGIC = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def compression(path: str) -> str | None:
    """The compression suffix of ``path`` (``.gz`` ...), or None."""
    ext = os.path.splitext(path)[1].lower()
    return ext if ext in COMPRESSED else None


def inner_name(path: str) -> str:
    """The name under the compression suffix, which tells the format: ``train.csv.gz`` -> ``train.csv``."""
    return path[: -len(compression(path))] if compression(path) else path


@contextmanager
def open_stream(path: str) -> Iterator[BinaryIO]:
    """The decompressed binary stream of a path or ``-``; a path that cannot be opened is a usage error."""
    if path == STDIN:
        raw = sys.stdin.buffer
        opener = next((o for magic, o in _MAGIC.items() if _peek(raw, len(magic)) == magic), None)
        if opener is None:
            yield raw
        else:
            with opener(raw, "rb") as stream:
                yield _checked(stream, "<stdin>")
        return
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise UsageError(e.strerror or str(e), path) from None
    with raw:
        kind = compression(path)
        if kind is None:
            yield raw
        elif kind == ".zip":
            with _zip_member(raw, path) as stream:
                yield _checked(stream, path)
        else:
            with _OPENERS[kind](raw, "rb") as stream:
                yield _checked(stream, path)


def _peek(stream: BinaryIO, n: int) -> bytes:
    peek = getattr(stream, "peek", None)
    return peek(n)[:n] if peek else b""


@contextmanager
def _zip_member(raw: BinaryIO, path: str) -> Iterator[BinaryIO]:
    """The one file inside a zip archive (folders aside); more than one is a usage error."""
    try:
        archive = zipfile.ZipFile(raw)
    except zipfile.BadZipFile as e:
        raise DataError(f"not a zip archive ({e})", path) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            names = ", ".join(m.filename for m in members[:5]) or "none"
            raise UsageError(f"a zip input holds one file; this one holds {len(members)} ({names}): "
                             "unzip it and give the file", path)
        with archive.open(members[0]) as stream:
            yield stream


def _checked(stream: BinaryIO, name: str) -> io.BufferedReader:
    """A decompressing stream, buffered (lines are read from it), its corruption errors DataErrors."""
    return io.BufferedReader(_Checked(stream, name), buffer_size=1 << 16)


class _Checked(io.RawIOBase):
    """A decompressing stream whose corruption errors become one-line DataErrors naming the file."""

    def __init__(self, stream: BinaryIO, name: str):
        super().__init__()
        self._stream, self._name = stream, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._stream.read(len(buffer))
        except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as e:
            raise DataError(f"cannot decompress: {e}", self._name) from None
        buffer[: len(data)] = data
        return len(data)


def sniff_encoding(stream: BinaryIO, encoding: str | None) -> str:
    """The encoding to read ``stream`` with: the given one, or UTF-8 unless a UTF-16 byte-order mark starts it."""
    if encoding:
        return encoding
    return "utf-16" if _peek(stream, 2) in _UTF16_BOMS else "utf-8"


def check_encoding(encoding: str | None) -> None:
    """A usage error for an encoding Python does not know."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UsageError(f"unknown --encoding {encoding!r} (e.g. utf-8, cp1252, latin-1, utf-16)") from None


def utf8_lines(stream: BinaryIO, encoding: str | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, the line as UTF-8 bytes) for every line, a byte-order mark dropped.

    UTF-8 passes through undecoded (the readers report a bad byte at its line).
    """
    encoding = sniff_encoding(stream, encoding)
    if codecs.lookup(encoding).name != "utf-8":
        for lineno, line in decoded_lines(stream, encoding):
            yield lineno, line.encode("utf-8", "surrogatepass")
        return
    for lineno, raw in enumerate(stream, 1):
        if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        yield lineno, raw


def decoded_lines(stream: BinaryIO, encoding: str | None = None) -> Iterator[tuple[int, str]]:
    """(line number from 1, the decoded line with its line end) for every line, a byte-order mark dropped.

    Byte-oriented encodings (UTF-8, cp1252, latin-1, ...) are decoded a line at a time, so a bad byte is
    reported at its own line; UTF-16 and UTF-32 go through a decoder over the whole stream.
    """
    encoding = sniff_encoding(stream, encoding)
    name = codecs.lookup(encoding).name
    if name.startswith(("utf-16", "utf-32")):
        decoder = codecs.getreader(encoding)(stream)
        lineno = 0
        try:
            for lineno, line in enumerate(iter(lambda: decoder.readline(keepends=True), ""), 1):
                yield lineno, line
        except UnicodeDecodeError as e:
            raise DataError(f"not {encoding} ({e.reason}): check --encoding", None, lineno + 1) from None
        return
    decode = codecs.getdecoder("utf-8-sig" if name == "utf-8" else encoding)
    for lineno, raw in enumerate(stream, 1):
        try:
            line = decode(raw)[0] if lineno == 1 else raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise DataError(encoding_message(raw, e, encoding), None, lineno) from None
        yield lineno, line


def encoding_message(raw: bytes, error: UnicodeDecodeError, encoding: str) -> str:
    """What a line that does not decode says: the byte, its column, and the way out."""
    hint = "give the file's --encoding (e.g. cp1252, latin-1, utf-16)" if codecs.lookup(encoding).name == "utf-8" \
        else "check --encoding"
    label = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    return f"not {label} (byte 0x{raw[error.start]:02x} at column {error.start + 1}): {hint}"
