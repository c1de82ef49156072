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
import sys
import tempfile
from typing import BinaryIO

import numpy as np

from seqtool.data.jsonl import STDIN, dumps, parse_record, write_records
from seqtool.data.readers import Source
from seqtool.errors import UsageError
from seqtool.model.siamese import UnionFind
from seqtool.predict import LoadedModel, encode_pair, encode_text, encode_texts, load_siamese, pair_chunks
from seqtool.stages.base import Report, source_warnings
from seqtool.wording import plural

BLOCK = 2048


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
        return Report(f"{plural(written, 'record')}, {plural(top_k, 'nearest neighbour')} each")
    n_groups = len(set(groups.tolist()))
    return Report(f"{plural(written, 'record')} in {plural(n_groups, 'group')} at threshold {tau:.4f}",
                  source_warnings(src))


def encode_source(loaded: LoadedModel, src: Source, spill=None, batch_size: int = 256):
    """(N, d) unit vectors of every record's text in ``src``, in order, and the records' ids; the records
    as they came in go to ``spill`` when given (group mode reads them back to annotate them)."""
    def keep(raw: dict) -> None:
        spill.write((dumps(raw) + "\n").encode())

    return encode_texts(loaded, src.map(lambda r: (r, encode_text(loaded, r))), batch_size,
                        keep if spill is not None else None)


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
