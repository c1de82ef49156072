"""Siamese training data: duplicate pairs only, both orders, and batches without hidden positives.

The triplet loss treats every off-diagonal entry of a batch's similarity
matrix as a negative. So no two rows of a batch may be duplicates of each
other: questions are joined into clusters (a question that appears in several
duplicate pairs links them all, transitively), and a batch holds at most one
row per cluster.
"""
import numpy as np

from seqtool.dataset import Ragged


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


def training_pairs(data, both_orders: bool = True):
    """The duplicate pairs of ``data`` (TaskData of task siamese), each in both orders, with their cluster."""
    from seqtool.evaluate import TaskData

    dup = np.flatnonzero(data.labels == 1)
    keys: dict[bytes, int] = {}

    def question(ids: np.ndarray) -> int:
        return keys.setdefault(ids.tobytes(), len(keys))

    left = [question(data.tokens[i]) for i in dup]
    right = [question(data.tokens2[i]) for i in dup]
    uf = UnionFind(len(keys))
    for a, b in zip(left, right):
        uf.union(a, b)
    cluster = np.array([uf.find(a) for a in left], dtype=np.int64)
    first, second = Ragged(data.tokens[i] for i in dup), Ragged(data.tokens2[i] for i in dup)
    if both_orders:
        first, second = Ragged([*(data.tokens[i] for i in dup), *(data.tokens2[i] for i in dup)]), \
            Ragged([*(data.tokens2[i] for i in dup), *(data.tokens[i] for i in dup)])
        cluster = np.concatenate([cluster, cluster])
    out = TaskData("siamese", first.finish(), None, np.ones(len(cluster), np.int64), second.finish())
    out.clusters = cluster
    return out


def duplicate_batches(data, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """One epoch of index arrays, no cluster twice in a batch.

    Rows are taken in shuffled order; a row whose cluster is already in the
    batch being filled waits for the next batch (checked first there), so
    every row is used once per epoch. Without clusters (evaluation data) the
    order is plain.
    """
    n = len(data)
    clusters = getattr(data, "clusters", None)
    if clusters is None or rng is None:
        return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    order = list(rng.permutation(n))
    batches, waiting = [], []
    while order or waiting:
        batch, seen, still_waiting = [], set(), []
        for i in waiting:
            if len(batch) < batch_size and clusters[i] not in seen:
                batch.append(i)
                seen.add(clusters[i])
            else:
                still_waiting.append(i)
        while order and len(batch) < batch_size:
            i = order.pop()
            if clusters[i] in seen:
                still_waiting.append(i)
            else:
                batch.append(i)
                seen.add(clusters[i])
        waiting = still_waiting
        if len(batch) >= 2:                 # the loss needs a negative
            batches.append(np.array(batch, dtype=np.int64))
        elif not order:
            break                           # only rows of one cluster are left: no negatives for them
    return batches
