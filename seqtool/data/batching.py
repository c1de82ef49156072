"""Batches and padding: the ``pad`` stage as pure generators over records.

``batches`` groups consecutive records (optionally sorting them by length
within a window of batches), ``pad_batch`` pads every id sequence of a batch
with 0 to the batch's longest (or to a fixed length, truncating), and
``unpad`` undoes it. A padded record carries, per sequence group::

    ids, tag_ids      -> mask, length          (tokens / text records)
    q1_ids            -> q1_mask, q1_length    (pairs)
    q2_ids            -> q2_mask, q2_length

``mask`` is 1 for a real token and 0 for padding; ``length`` is the number of
real tokens (after truncation). ``pad_records`` adds the ``batch`` number.
"""
from itertools import islice
from typing import Iterable, Iterator, NamedTuple

from seqtool.errors import DataError

PAD_ID = 0



class Group(NamedTuple):
    """Id sequences padded together: the first one sets the length; one mask and length for all."""

    ids: tuple[str, ...]
    mask: str
    length: str


GROUPS = (Group(("ids", "tag_ids"), "mask", "length"),
          Group(("q1_ids",), "q1_mask", "q1_length"),
          Group(("q2_ids",), "q2_mask", "q2_length"))
_LENGTH_KEYS = tuple(group.length for group in GROUPS)


def seq_length(record: dict) -> int:
    """The length that matters for bucketing: the longest of the record's id sequences."""
    return max(len(record[group.ids[0]]) for group in GROUPS if group.ids[0] in record)


def check_ids(record: dict) -> dict:
    """A record ready for padding; DataError if its id lists are missing or malformed.

    A record that was padded before (it has a ``length``) is unpadded first, so
    ``pad`` can re-batch the output of ``pad``.
    """
    if any(key in record for key in _LENGTH_KEYS):
        record = unpad(record)
    found = False
    for group in GROUPS:
        if group.ids[0] not in record:
            continue
        found = True
        n = None
        for key in group.ids:
            if key not in record:
                continue
            ids = record[key]
            if type(ids) is not list or not set(map(type, ids)) <= {int}:
                raise DataError(f'"{key}" must be a list of integers')
            if n is None:
                n = len(ids)
                if n == 0:
                    raise DataError(f'"{key}" is empty')
            elif len(ids) != n:
                raise DataError(f'"{key}" has {len(ids)} items but "{group.ids[0]}" has {n}')
    if not found:
        raise DataError('no "ids", "q1_ids" or "q2_ids" to pad (run seqtool vocab first)')
    return record


def batches(records: Iterable[dict], batch_size: int, bucket: int = 0) -> Iterator[list[dict]]:
    """Lists of ``batch_size`` consecutive records (the last may be shorter).

    With ``bucket=N`` (N >= 1), N batches' worth of records are read at a time,
    sorted by ``seq_length`` (stable) and cut into batches, so records of
    similar length share a batch; the order changes only within the window.
    Memory holds one window.
    """
    if batch_size < 1 or bucket < 0:
        raise ValueError("batch_size must be >= 1 and bucket >= 0")
    it = iter(records)
    window = batch_size * max(bucket, 1)
    while chunk := list(islice(it, window)):
        if bucket:
            chunk.sort(key=seq_length)
        for i in range(0, len(chunk), batch_size):
            yield chunk[i:i + batch_size]


def pad(seq: list, width: int, value: int = PAD_ID) -> list:
    """``seq`` cut or filled with ``value`` to exactly ``width`` items."""
    return seq[:width] + [value] * (width - len(seq))


def pad_batch(batch: list[dict], length: int | None = None) -> list[dict]:
    """Copies of the records with every id sequence padded to the group's longest in the batch.

    With ``length``, every sequence is padded or truncated to ``length`` instead.
    Adds ``mask`` and ``length`` (``q1_mask``, ... for pairs); other keys pass through.
    """
    out = [dict(record) for record in batch]
    for group in GROUPS:
        first = group.ids[0]
        rows = [record for record in out if first in record]
        if not rows:
            continue
        width = length or max(len(record[first]) for record in rows)
        for record in rows:
            n = min(len(record[first]), width)
            for key in group.ids:
                if key in record:
                    record[key] = pad(record[key], width)
            record[group.mask] = [1] * n + [0] * (width - n)
            record[group.length] = n
    return out


def unpad(record: dict) -> dict:
    """The inverse of padding: id sequences cut to their ``length``; mask, length and batch removed."""
    out = dict(record)
    for group in GROUPS:
        n = out.pop(group.length, None)
        if n is None:
            continue
        out.pop(group.mask, None)
        for key in group.ids:
            if key in out:
                out[key] = out[key][:n]
    out.pop("batch", None)
    return out


def pad_records(records: Iterable[dict], batch_size: int, bucket: int = 0,
                length: int | None = None) -> Iterator[dict]:
    """Every record padded within its batch, with its ``batch`` number (from 0)."""
    for number, batch in enumerate(batches(records, batch_size, bucket)):
        for record in pad_batch(batch, length):
            record["batch"] = number
            yield record
