"""The ``dedupe`` stage: a Siamese model's cosine similarity, thresholded at tau.

pairs mode   records with q1/q2 stream through a chunk at a time; each gets
             ``similarity`` and ``is_duplicate`` (a gold value that was there
             is kept as ``gold_is_duplicate``).
group mode   records with ``text``: every record is encoded (one float32
             vector each; the records themselves wait in a temporary file),
             then grouped by leader clustering in input order (model/grouping.py):
             each record joins the earliest representative it matches (cosine
             >= tau), else it starts a group; memory holds a few (block x block)
             slices, never N x N. Each record gets ``group`` (the 0-based number
             of its representative, the group's first record, a stable id),
             ``duplicate_of`` (the representative's ``id`` if it has one, else its
             number; null for the representative itself) and ``score`` (its
             similarity to that representative, always >= tau; null for it).
             ``--top-k K`` instead lists each record's K nearest neighbours.
"""
import itertools
import sys
import tempfile
from typing import BinaryIO

import numpy as np

from seqtool.data.dataset import Ragged, make_batch
from seqtool.errors import DataError, UsageError
from seqtool.data.dataset import TaskData
from seqtool.model.inference import pair_similarities
from seqtool.data.jsonl import STDIN, dumps, parse_record, write_records
from seqtool.data.readers import Source
from seqtool.model.grouping import BLOCK, find_groups, size_report
from seqtool.stages.base import Report
from seqtool.stages.tag import LoadedModel
from seqtool.model.tasks import encode


def _load(model: str, threshold: float | None) -> tuple[LoadedModel, float]:
    loaded = LoadedModel(model)
    if loaded.task != "siamese":
        raise UsageError(f"{model} is a {loaded.task} model: dedupe needs a siamese one (train --task siamese)")
    tau = threshold if threshold is not None else loaded.config.get("threshold")
    if tau is None:
        raise UsageError(f"{model} has no threshold (it was trained without --dev): give --threshold")
    return loaded, float(tau)


def run_dedupe(model: str, input: str = STDIN, out: BinaryIO | None = None, *, group: bool = False,
               top_k: int | None = None, threshold: float | None = None, format: str | None = None,
               batch_size: int = 256, threads: int | None = None, skip_invalid: bool = False,
               progress: bool | None = None) -> Report:
    from seqtool.runtime import configure

    configure(threads)
    if batch_size < 1 or (top_k is not None and top_k < 1):
        raise UsageError("--batch-size and --top-k must be at least 1")
    loaded, tau = _load(model, threshold)
    out = out or sys.stdout.buffer
    src = Source(input, format, skip_invalid=skip_invalid)
    if group or top_k:
        return _group(loaded, tau, src, out, top_k, batch_size, progress)
    return _pairs(loaded, tau, src, out, batch_size)


def _pairs(loaded: LoadedModel, tau: float, src: Source, out: BinaryIO, batch_size: int,
           require_gold: bool = False) -> Report:
    """Write every pair with its similarity and decision; ``require_gold`` (eval) refuses a pair without
    ``is_duplicate`` at its line."""
    records = src.map(lambda r: _encode_pair(loaded, r, require_gold))
    n = dup = 0
    while True:
        chunk = list(itertools.islice(records, batch_size))
        if not chunk:
            break
        data = TaskData("siamese", Ragged(r.pop("q1_ids") for r in chunk).finish(), None, None,
                        Ragged(r.pop("q2_ids") for r in chunk).finish())
        for rec, s in zip(chunk, pair_similarities(loaded.model, data, batch_size)):
            rec["similarity"] = round(float(s), 6)
            rec["is_duplicate"] = bool(s >= tau)
            dup += rec["is_duplicate"]
        n += write_records(chunk, out)
    return Report(f"{n} pairs, {dup} duplicates at threshold {tau:.4f}", [w for w in [src.reject.warning()] if w])


def _encode_pair(loaded: LoadedModel, record: dict, require_gold: bool = False) -> dict:
    if "q1" not in record and "q1_tokens" not in record:
        raise DataError('a pair needs "q1" and "q2" (use --group for single texts)')
    rec = loaded.encode(record)
    gold = rec.pop("is_duplicate", None)
    if gold is None and require_gold:
        raise DataError('pair has no gold "is_duplicate" to score against')
    if gold is not None:
        rec["gold_is_duplicate"] = gold
    for key in ("q1_tokens", "q2_tokens"):
        if key not in record:
            rec.pop(key, None)
    return rec


# ---------------------------------------------------------------- group mode

def _group(loaded, tau, src, out, top_k, batch_size, progress) -> Report:
    with tempfile.TemporaryFile() as spill:
        vectors, ids = _encode_all(loaded, src, spill, batch_size)
        n = len(vectors)
        if n == 0:
            raise DataError("no records", src.name)
        if top_k:
            neighbours = nearest(vectors, min(top_k, n - 1))
        else:
            groups, score = find_groups(vectors, tau)       # representative of each record, similarity to it
        spill.seek(0)

        def annotated():
            for i, line in enumerate(spill):
                rec = parse_record(line)
                if top_k:
                    rec["neighbours"] = [{"index": int(j), "id": ids[j], "similarity": round(float(s), 6)}
                                         for j, s in neighbours[i]]
                else:
                    rep = int(groups[i])
                    rec["group"] = rep
                    rec["duplicate_of"] = None if rep == i else ids[rep]
                    rec["score"] = None if rep == i else round(float(score[i]), 6)
                yield rec
        written = write_records(annotated(), out)
    if top_k:
        return Report(f"{written} records, {top_k} nearest neighbours each")
    n_groups = len(set(groups.tolist()))
    sizes, too_big = size_report(groups, tau)
    return Report(f"{written} records in {n_groups} groups at threshold {tau:.4f}; {sizes}",
                  [w for w in [src.reject.warning(), too_big] if w])


def _encode_all(loaded, src: Source, spill, batch_size: int):
    """(N, d) unit vectors of every record's text, in order; the records go to ``spill``."""
    records = src.map(lambda r: (r, _encode_text(loaded, r)))
    vectors, ids = [], []
    while True:
        chunk = list(itertools.islice(records, batch_size))
        if not chunk:
            break
        b = make_batch(np.arange(len(chunk)), Ragged(enc["ids"] for _, enc in chunk).finish())
        vectors.append(encode(loaded.model, b.ids, b.packing).astype(np.float32))
        for raw, _ in chunk:
            ids.append(raw.get("id", len(ids)))
            spill.write((dumps(raw) + "\n").encode())   # the record as it came in
    return (np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)), ids


def _encode_text(loaded: LoadedModel, record: dict) -> dict:
    enc = loaded.encode(record)
    if "ids" not in enc:
        raise DataError('group mode reads one text per record ("text" or "tokens")')
    return enc


def nearest(v: np.ndarray, k: int, block: int = BLOCK) -> list[list[tuple[int, float]]]:
    """Each row's k most similar other rows, best first, computed block by block."""
    n = len(v)
    out = []
    if k < 1:
        return [[] for _ in range(n)]
    block = max(1, min(block, 2 ** 24 // max(n, 1)))             # a slice holds at most 64 MB
    for i0 in range(0, n, block):
        s = v[i0:i0 + block] @ v.T                                   # (bi, N)
        s[np.arange(len(s)), np.arange(i0, i0 + len(s))] = -np.inf   # not itself
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        for r in range(len(s)):
            cand = top[r][np.argsort(-s[r, top[r]], kind="stable")]
            out.append([(int(j), float(s[r, j])) for j in cand])
    return out
