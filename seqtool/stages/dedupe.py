"""The ``dedupe`` stage: a Siamese model's cosine similarity, thresholded at tau.

pairs mode   records with q1/q2 stream through a chunk at a time; each gets
             ``similarity`` and ``is_duplicate`` (a gold value that was there
             is kept as ``gold_is_duplicate``).
group mode   records with ``text``: every record is encoded (one float32
             vector each; the records themselves wait in a temporary file),
             then all pairs with cosine >= tau are found block by block, so
             memory holds one (block x block) slice of the similarity matrix,
             never N x N; groups are their connected components (union-find).
             Each record gets ``group`` (the 0-based number of its group's
             first record, a stable id), ``duplicate_of`` (that record's
             ``id`` if it has one, else its number; null for the first itself)
             and ``score`` (its best similarity inside the group).
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
from seqtool.model.siamese import UnionFind
from seqtool.stages.base import Report
from seqtool.stages.tag import LoadedModel
from seqtool.model.tasks import encode

BLOCK = 2048


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
            groups, score = find_groups(vectors, tau)
        spill.seek(0)

        def annotated():
            for i, line in enumerate(spill):
                rec = parse_record(line)
                if top_k:
                    rec["neighbours"] = [{"index": int(j), "id": ids[j], "similarity": round(float(s), 6)}
                                         for j, s in neighbours[i]]
                else:
                    first = int(groups[i])
                    rec["group"] = first
                    rec["duplicate_of"] = None if first == i else ids[first]
                    rec["score"] = round(float(score[i]), 6) if np.isfinite(score[i]) else None
                yield rec
        written = write_records(annotated(), out)
    if top_k:
        return Report(f"{written} records, {top_k} nearest neighbours each")
    n_groups = len(set(groups.tolist()))
    return Report(f"{written} records in {n_groups} groups at threshold {tau:.4f}",
                  [w for w in [src.reject.warning()] if w])


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


def find_groups(v: np.ndarray, tau: float, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(first member of each row's group, each row's best similarity inside its group or -inf).

    Rows of ``v`` are unit vectors; pairs with v_i . v_j >= tau are joined.
    Block pairs (I, J) with J >= I are multiplied one at a time: memory is
    O(block^2 + N), whatever N is. ``seqtool dedupe --group --dask`` runs the same
    ``block_pairs`` per block pair on the workers and the same ``GroupJoin`` here.
    """
    n = len(v)
    join = GroupJoin(n)
    for i0 in range(0, n, block):
        for j0 in range(i0, n, block):
            join.add(*block_pairs(v[i0:i0 + block], v[j0:j0 + block], i0, j0, tau))
    return join.result()


def block_pairs(vi: np.ndarray, vj: np.ndarray, i0: int, j0: int,
                tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of one block pair with similarity >= tau: (rows, cols, similarities), rows and cols global.

    ``vi`` (bi, d) holds rows i0.., ``vj`` (bj, d) rows j0..; with i0 == j0 (a block with itself)
    a row is never paired with itself. Memory: the one (bi, bj) slice.
    """
    s = vi @ vj.T                                          # (bi, bj) one slice of the similarity matrix
    if i0 == j0:
        np.fill_diagonal(s, -np.inf)
    rows, cols = np.nonzero(s >= tau)
    return i0 + rows, j0 + cols, s[rows, cols]


class GroupJoin:
    """Pairs joined into groups (union-find) and each row's best similarity, in any order of pairs."""

    def __init__(self, n: int):
        self.n = n
        self.uf = UnionFind(n)
        self.best = np.full(n, -np.inf, dtype=np.float32)

    def add(self, rows: np.ndarray, cols: np.ndarray, sims: np.ndarray) -> None:
        for r, c in zip(rows.tolist(), cols.tolist()):
            self.uf.union(r, c)
        if len(rows):
            np.maximum.at(self.best, rows, sims)
            np.maximum.at(self.best, cols, sims)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(first member of each row's group, best similarity per row); both independent of the pairs' order."""
        roots = np.array([self.uf.find(i) for i in range(self.n)])
        first = np.full(self.n, self.n, dtype=np.int64)
        np.minimum.at(first, roots, np.arange(self.n))
        return first[roots], self.best


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
