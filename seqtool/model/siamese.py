"""Siamese training data: duplicate pairs only, both orders, in batches without hidden positives.

The triplet loss treats every off-diagonal entry of a batch's similarity
matrix as a negative. So no two rows of a batch may be duplicates of each
other: questions are joined into clusters (a question that appears in several
duplicate pairs links them all, transitively), and a batch holds at most one
row per cluster (data/dataset.duplicate_batches).
"""
import numpy as np

from seqtool.data.dataset import Ragged, TaskData


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def training_pairs(data, both_orders: bool = True, hard_negatives: bool = False):
    """The rows to train on from ``data`` (TaskData of task siamese), with their cluster and unit.

    Every duplicate pair gives a row (q1 -> q2), and with ``both_orders`` also
    (q2 -> q1). With ``hard_negatives`` every labelled non-duplicate pair (a, b)
    gives two self rows, (a -> a) and (b -> b), kept together in one unit so
    that they share a batch: each is its own positive (seen through different
    dropout) and the other is its hard negative, an off-diagonal entry of the
    same similarity matrix. A row's cluster is its question's duplicate cluster
    (union-find over the duplicate pairs), which batching keeps apart.
    """
    keys: dict[bytes, int] = {}

    def question(ids: np.ndarray) -> int:
        return keys.setdefault(ids.tobytes(), len(keys))

    dup = np.flatnonzero(data.labels == 1)
    left = [question(data.tokens[i]) for i in dup]
    right = [question(data.tokens2[i]) for i in dup]
    non_dup = np.flatnonzero(data.labels == 0) if hard_negatives else np.zeros(0, np.int64)
    neg_a = [question(data.tokens[i]) for i in non_dup]
    neg_b = [question(data.tokens2[i]) for i in non_dup]
    uf = UnionFind(len(keys))
    for a, b in zip(left, right):
        uf.union(a, b)
    first, second, cluster = [], [], []

    def add(x: np.ndarray, y: np.ndarray, q: int) -> None:
        first.append(x)
        second.append(y)
        cluster.append(uf.find(q))

    for i, q in zip(dup, left):
        add(data.tokens[i], data.tokens2[i], q)
    if both_orders:
        for i, q in zip(dup, right):
            add(data.tokens2[i], data.tokens[i], q)
    units = [np.array([r]) for r in range(len(first))]
    for i, qa, qb in zip(non_dup, neg_a, neg_b):
        if uf.find(qa) == uf.find(qb):
            continue                        # labelled both ways (through other pairs): not a negative
        r = len(first)
        add(data.tokens[i], data.tokens[i], qa)
        add(data.tokens2[i], data.tokens2[i], qb)
        units.append(np.array([r, r + 1]))
    return TaskData("siamese", Ragged(first).finish(), None, np.ones(len(cluster), np.int64),
                    Ragged(second).finish(), clusters=np.array(cluster, dtype=np.int64), units=units)
