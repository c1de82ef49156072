"""fastText's supervised format: ``__label__pos __label__x the text ...``, one example per line.

Reading: the leading ``__label__`` words are the labels, the rest (whitespace
collapsed, as fastText splits it) is the text -> ``{"text": ..., "label": first}``
plus ``"labels": [...]`` when there are several (seqtool's classifiers learn one
label; the rest pass through). A line without labels is ``{"text": ...}``
(input to tag). Blank lines are skipped, as fastText skips them.

Writing: an example as fastText reads it (``example_line``), and a prediction
as ``fasttext predict-prob`` prints it (``prediction_line``: ``__label__pos 0.97``).
"""
from typing import Iterable, Iterator

from seqtool.data.jsonl import decode_line
from seqtool.errors import DataError

PREFIX = "__label__"


def parse_line(text: str) -> dict:
    """One fastText line (decoded) -> its record."""
    words = text.split()
    n = 0
    while n < len(words) and words[n].startswith(PREFIX):
        n += 1
    labels = [w[len(PREFIX):] for w in words[:n]]
    if any(not label for label in labels):
        raise DataError(f"{PREFIX} without a label name")
    record = {"text": " ".join(words[n:])}
    if labels:
        record["label"] = labels[0]
    if len(labels) > 1:
        record["labels"] = labels
    return record


def iter_fasttext(lines: Iterable[tuple[int, bytes]], reject) -> Iterator[tuple[int, dict]]:
    """(line, record) for every non-blank line; bad lines go to ``reject``."""
    return reject.mapped(((n, raw) for n, raw in lines if raw.strip()), lambda raw: parse_line(decode_line(raw)))


def example_line(record: dict) -> str:
    """A record as one fastText training line: its labels, then its text (or tokens)."""
    labels = record.get("labels") or ([record["label"]] if record.get("label") is not None else [])
    text = record.get("text")
    if text is None:
        if record.get("tokens") is None:
            raise DataError('fastText lines need "text" or "tokens"')
        text = " ".join(record["tokens"])
    words = [PREFIX + str(label).replace(" ", "_") for label in labels] + text.split()
    return " ".join(words) + "\n"


def prediction_line(record: dict) -> str:
    """A classifier's prediction as fastText prints it: ``__label__pos 0.97``."""
    label = record.get("label")
    if label is None:                   # a record with no tokens gets no prediction
        return "\n"
    prob = record.get("probs", {}).get(str(label))
    return f"{PREFIX}{label}" + (f" {prob:.4g}" if prob is not None else "") + "\n"
