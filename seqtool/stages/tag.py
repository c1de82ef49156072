"""The ``tag`` stage: a trained tagger or classifier over a stream of records.

Records are read, predicted (seqtool/predict.py) and written a chunk at a time
(``batch_size`` records), so memory stays flat however long the input is and
the output order is the input order. Every key of the input passes through;
the prediction replaces ``tags`` / ``label`` and a gold value that was there is
kept as ``gold_tags`` / ``gold_label`` (what ``seqtool eval --pred`` reads).
"""
import sys
from typing import BinaryIO

from seqtool.data.jsonl import STDIN, dumps
from seqtool.data.readers import Source
from seqtool.errors import UsageError
from seqtool.predict import LoadedModel, conll_lines, tag_chunks
from seqtool.stages.base import Report, source_warnings


def run_tag(model: str, input: str = STDIN, out: BinaryIO | None = None, *, format: str | None = None,
            output_format: str = "jsonl", batch_size: int = 256, threads: int | None = None,
            skip_invalid: bool = False, progress: bool | None = None) -> Report:
    """Write every record of ``input`` with the model's predictions added."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    loaded = LoadedModel(model)
    if loaded.task not in ("tagger", "classifier"):
        raise UsageError(f"{model} is a {loaded.task} model: use seqtool dedupe", model)
    if output_format == "conll" and loaded.task != "tagger":
        raise UsageError("--output-format conll is for taggers")
    out = out or sys.stdout.buffer
    src = Source(input, format, skip_invalid=skip_invalid)
    line = conll_lines if output_format == "conll" else _json_line
    n = tokens = 0
    for chunk in tag_chunks(loaded, src.map(loaded.encode), batch_size, threads):
        out.write("".join([line(rec) for rec in chunk]).encode())    # one write a chunk
        n += len(chunk)
        tokens += sum(len(r["tokens"]) for r in chunk)
    out.flush()
    return Report(f"{n} records, {tokens} tokens tagged", source_warnings(src))


def _json_line(rec: dict) -> str:
    return dumps(rec) + "\n"
