"""The ``dedupe`` stage: a Siamese model's cosine similarity, thresholded at tau.

pairs mode   records with q1/q2 stream through a chunk at a time; each gets
             ``similarity`` and ``is_duplicate`` (a gold value that was there
             is kept as ``gold_is_duplicate``).
group mode   records with ``text``: every record is encoded (one float32
             vector each; the records themselves wait in a temporary file),
             then grouped (model/grouping.py): representatives in input order (a
             record becomes one unless it matches, cosine >= tau, one before it),
             then every other record joins the representative it is most
             similar to; memory holds a few (block x block) slices, never N x N.
             Each record gets ``group`` (the 0-based number of its
             representative, a stable id),
             ``duplicate_of`` (the representative's ``id`` if it has one, else its
             number; null for the representative itself) and ``score`` (its
             similarity to that representative, always >= tau; null for it).
             ``--top-k K`` instead lists each record's K nearest neighbours.
"""
import sys
import tempfile
from typing import BinaryIO

from seqtool.data.jsonl import STDIN, dumps, parse_record, write_records
from seqtool.data.readers import Source
from seqtool.errors import UsageError
from seqtool.model.grouping import find_groups, group_fields, nearest, neighbour_fields, size_report
from seqtool.predict import LoadedModel, encode_pair, encode_text, encode_texts, load_siamese, pair_chunks
from seqtool.stages.base import Report, source_warnings
from seqtool.wording import plural


def run_dedupe(model: str, input: str = STDIN, out: BinaryIO | None = None, *, group: bool = False,
               top_k: int | None = None, threshold: float | None = None, format: str | None = None,
               batch_size: int = 256, threads: int | None = None, skip_invalid: bool = False,
               progress: bool | None = None) -> Report:
    from seqtool.runtime import configure

    configure(threads)
    if batch_size < 1 or (top_k is not None and top_k < 1):
        raise UsageError("--batch-size and --top-k must be at least 1")
    loaded, tau = load_siamese(model, threshold)
    out = out or sys.stdout.buffer
    src = Source(input, format, skip_invalid=skip_invalid)
    if group or top_k:
        return _group(loaded, tau, src, out, top_k, batch_size, progress)
    return write_pairs(loaded, tau, src, out, batch_size)


def write_pairs(loaded: LoadedModel, tau: float, src: Source, out: BinaryIO, batch_size: int,
                require_gold: bool = False) -> Report:
    """Write every pair of ``src`` with its similarity and decision; ``require_gold`` (eval) refuses a pair
    without ``is_duplicate`` at its line."""
    n = dup = 0
    for chunk in pair_chunks(loaded, tau, src.map(lambda r: encode_pair(loaded, r, require_gold)), batch_size):
        dup += sum(rec["is_duplicate"] for rec in chunk)
        n += write_records(chunk, out)
    return Report(f"{plural(n, 'pair')}, {plural(dup, 'duplicate')} at threshold {tau:.4f}", source_warnings(src))


# ---------------------------------------------------------------- group mode

def _group(loaded, tau, src, out, top_k, batch_size, progress) -> Report:
    with tempfile.TemporaryFile() as spill:
        vectors, ids = encode_source(loaded, src, spill, batch_size)
        n = len(vectors)
        if n == 0:                             # nothing in, nothing out, as in pairs mode and every stage
            return Report(plural(0, "record"), source_warnings(src))
        if top_k:
            neighbours = nearest(vectors, min(top_k, n - 1))
        else:
            groups, score = find_groups(vectors, tau)       # representative of each record, similarity to it
        spill.seek(0)

        def annotated():
            for i, line in enumerate(spill):
                rec = parse_record(line)
                if top_k:
                    rec["neighbours"] = neighbour_fields(neighbours[i], ids)
                else:
                    rec.update(group_fields(groups, score, ids, i))
                yield rec
        written = write_records(annotated(), out)
    if top_k:
        return Report(f"{plural(written, 'record')}, {plural(top_k, 'nearest neighbour')} each")
    n_groups = len(set(groups.tolist()))
    sizes, too_big = size_report(groups, tau)
    return Report(f"{plural(written, 'record')} in {plural(n_groups, 'group')} at threshold {tau:.4f}; {sizes}",
                  source_warnings(src, too_big))


def encode_source(loaded: LoadedModel, src: Source, spill=None, batch_size: int = 256):
    """(N, d) unit vectors of every record's text in ``src``, in order, and the records' ids; the records
    as they came in go to ``spill`` when given (group mode reads them back to annotate them)."""
    def keep(raw: dict) -> None:
        spill.write((dumps(raw) + "\n").encode())

    return encode_texts(loaded, src.map(lambda r: (r, encode_text(loaded, r))), batch_size,
                        keep if spill is not None else None)
