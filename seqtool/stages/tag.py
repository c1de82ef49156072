"""The ``tag`` stage: a trained tagger or classifier over a stream of records.

Records are read, predicted (seqtool/predict.py) and written a chunk at a time
(``batch_size`` records), so memory stays flat however long the input is and
the output order is the input order. Every key of the input passes through;
the prediction replaces ``tags`` / ``label`` and a gold value that was there is
kept as ``gold_tags`` / ``gold_label`` (what ``seqtool eval --pred`` reads).
"""
import sys
from typing import BinaryIO

from seqtool.data.jsonl import STDIN
from seqtool.data.readers import Source
from seqtool.errors import UsageError
from seqtool.data.texts import TextArguments
from seqtool.data.tagged import OUTPUT_FORMATS
from seqtool.predict import LoadedModel, tag_chunks
from seqtool.stages.base import Report, source_warnings
from seqtool.wording import plural


def run_tag(model: str, input: str = STDIN, out: BinaryIO | None = None, *, format: str | None = None,
            output_format: str = "jsonl", batch_size: int = 256, threads: int | None = None,
            skip_invalid: bool = False, progress: bool | None = None, texts: list[str] | None = None) -> Report:
    """Write every record of ``input`` (or of ``texts``: ``--text`` values) with the model's predictions added."""
    loaded = LoadedModel(model)
    if loaded.task not in ("tagger", "classifier"):
        raise UsageError(f"{model} is a {loaded.task} model: use seqtool dedupe", model)
    if output_format == "conll" and loaded.task != "tagger":
        raise UsageError("--output-format conll is for taggers")
    if output_format == "fasttext" and loaded.task != "classifier":
        raise UsageError("--output-format fasttext is for classifiers")
    out = out or sys.stdout.buffer
    src = TextArguments(texts, input, skip_invalid) if texts else Source(input, format, skip_invalid=skip_invalid)
    line = OUTPUT_FORMATS[output_format]
    n = tokens = 0
    for chunk in tag_chunks(loaded, src.map(loaded.encode), batch_size, threads):
        out.write("".join([line(rec) for rec in chunk]).encode())    # one write a chunk
        n += len(chunk)
        tokens += sum(len(r["tokens"]) for r in chunk)
    out.flush()
    return Report(f"{plural(n, 'record')}, {plural(tokens, 'token')} tagged", source_warnings(src))
