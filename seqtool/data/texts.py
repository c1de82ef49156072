"""Texts given on the command line (``seqtool tag --text "..."``, repeatable), read as records.

``TextArguments`` is a ``readers.Source`` whose lines are the ``--text`` values: each is
``{"text": value}`` at "line" i of ``--text``, so errors and ``--skip-invalid`` read as
they do for a file (``--text:2: ...``).
"""
from typing import Iterator

from seqtool.data.jsonl import STDIN
from seqtool.data.readers import Source
from seqtool.errors import UsageError

NAME = "--text"


class TextArguments(Source):
    def __init__(self, texts: list[str], input: str | None = STDIN, skip_invalid: bool = False):
        if input not in (None, STDIN):
            raise UsageError(f"give INPUT ({input}) or --text, not both")
        super().__init__(STDIN, "text", skip_invalid=skip_invalid)
        self.name = NAME
        self.texts = list(texts)

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        for i, text in enumerate(self.texts, 1):
            yield i, {"text": text}
