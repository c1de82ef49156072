"""Training data held compactly in memory, and the batches cut from it.

Records become flat int32 arrays plus offsets (a few bytes per token, not a
Python object per token), so a corpus of millions of tokens trains without
the interpreter's memory overhead. A batch is handed to the model packed
(seqtool/data/packing.py): no padding is ever computed.
"""
from dataclasses import dataclass

import numpy as np

from seqtool.data.chars import char_matrix
from seqtool.data.packing import Packing, make_packing
from seqtool.errors import DataError


class Ragged:
    """A list of int sequences stored as one flat array and offsets."""

    def __init__(self, seqs=None):
        self._chunks: list[np.ndarray] = []
        self._lengths: list[int] = []
        self.flat = np.zeros(0, np.int32)
        self.offsets = np.zeros(1, np.int64)
        for s in seqs or ():
            self.append(s)

    @classmethod
    def from_flat(cls, flat: np.ndarray, lengths: list) -> "Ragged":
        """The sequences of ``flat`` cut at ``lengths``."""
        r = cls()
        r.flat = np.asarray(flat, np.int32)
        r.offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        return r

    def append(self, seq) -> None:
        a = np.asarray(seq, dtype=np.int32)
        self._chunks.append(a)
        self._lengths.append(len(a))
        if len(self._chunks) >= 4096:  # fold often so the Python list stays short
            self._fold()

    def _fold(self) -> None:
        if self._chunks:
            self.flat = np.concatenate([self.flat] + self._chunks)
            lengths = np.asarray(self._lengths, np.int64)
            self.offsets = np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(lengths)])
            self._chunks, self._lengths = [], []

    def finish(self) -> "Ragged":
        self._fold()
        return self

    def __len__(self) -> int:
        return len(self.offsets) - 1 + len(self._lengths)

    @property
    def lengths(self) -> np.ndarray:
        self._fold()
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        self._fold()
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def packed(self, indices: np.ndarray, p: Packing) -> np.ndarray:
        """The sequences ``indices`` (in batch order) as packed rows (N,) for packing ``p``."""
        out = np.zeros(p.n_rows, dtype=np.int32)  # an empty record runs as one <PAD> token
        for b, i in enumerate(indices):
            L = min(p.lengths[b], self.offsets[i + 1] - self.offsets[i])
            out[p.rows[b, :L]] = self.flat[self.offsets[i]:self.offsets[i] + L]
        return out

    def packed_matrix(self, matrix: np.ndarray, indices: np.ndarray, p: Packing) -> np.ndarray:
        """Rows of ``matrix`` (len(flat), w), one per token of this Ragged, as packed rows (N, w)."""
        out = np.zeros((p.n_rows,) + matrix.shape[1:], dtype=matrix.dtype)
        for b, i in enumerate(indices):
            L = min(p.lengths[b], self.offsets[i + 1] - self.offsets[i])
            out[p.rows[b, :L]] = matrix[self.offsets[i]:self.offsets[i] + L]
        return out


@dataclass
class Batch:
    """One training or inference batch, packed."""

    indices: np.ndarray            # (B,) record numbers in the dataset
    packing: Packing
    ids: np.ndarray                # (N,) token ids, packed
    tag_ids: np.ndarray | None     # (N,) gold tag ids, packed (taggers)
    labels: np.ndarray | None      # (B,) gold label ids (classifiers)
    ids2: np.ndarray | None = None           # second side of a pair (siamese), packed
    packing2: Packing | None = None
    chars: np.ndarray | None = None          # (N, 1 + W) word shape + character ids, packed (charfeatures.py)

    @property
    def n_tokens(self) -> int:
        n = self.packing.n_rows
        return n + (self.packing2.n_rows if self.packing2 is not None else 0)


def length_bucketed_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                          window: int = 50) -> list[np.ndarray]:
    """Record indices cut into batches of similar length.

    Shuffle (when rng is given), sort by length inside windows of ``window``
    batches so a batch wastes little on the longest sequence's tail, cut, and
    shuffle the batches again so lengths do not trend over the epoch.
    """
    n = len(lengths)
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    span = batch_size * window
    parts = []
    for s in range(0, n, span):
        chunk = idx[s:s + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        parts.extend(chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size))
    if rng is not None:
        parts = [parts[i] for i in rng.permutation(len(parts))]
    return parts


def make_batch(indices: np.ndarray, tokens: Ragged, tags: Ragged | None = None,
               labels: np.ndarray | None = None, tokens2: Ragged | None = None,
               chars: np.ndarray | None = None) -> Batch:
    """Pack the records ``indices`` of the given columns into a Batch.

    ``chars`` (len(tokens.flat), 1 + W), when given, holds one row per token of ``tokens``.
    """
    lengths = np.maximum(tokens.lengths[indices], 1)
    p = make_packing(lengths)
    ids = tokens.packed(indices, p)
    tag_ids = tags.packed(indices, p) if tags is not None else None
    lab = labels[indices] if labels is not None else None
    if tokens2 is None:
        char_rows = tokens.packed_matrix(chars, indices, p) if chars is not None else None
        return Batch(indices, p, ids, tag_ids, lab, chars=char_rows)
    p2 = make_packing(np.maximum(tokens2.lengths[indices], 1))
    return Batch(indices, p, ids, tag_ids, lab, tokens2.packed(indices, p2), p2)


# ---------------------------------------------------------------- a task's data: records as arrays

@dataclass
class TaskData:
    task: str
    tokens: Ragged                      # ids (q1 ids for pairs)
    tags: Ragged | None = None          # tag ids (taggers)
    labels: np.ndarray | None = None    # label ids (classifiers) or is_duplicate (pairs)
    tokens2: Ragged | None = None       # q2 ids (pairs)
    chars: np.ndarray | None = None     # (len(tokens.flat), 1 + W) shape + character ids per token (--char)
    # Siamese training rows (model/siamese.training_pairs): each row's duplicate cluster, which a
    # batch holds at most once, and the units (row index arrays) that must share a batch.
    clusters: np.ndarray | None = None
    units: list | None = None
    # The batches ``seqtool pad`` made (index arrays of consecutive records), when the records came
    # through it: training takes them as they are, in a shuffled order (see batch_order).
    groups: list | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, idx: np.ndarray) -> Batch:
        return make_batch(idx, self.tokens, self.tags, self.labels, self.tokens2, self.chars)

    def batch_order(self, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Index arrays of one epoch's batches (in input order when rng is None)."""
        if self.clusters is not None:
            return duplicate_batches(len(self), self.clusters, self.units, batch_size, rng)
        if self.groups is not None and rng is not None:
            return [self.groups[i] for i in rng.permutation(len(self.groups))]
        lengths = self.tokens.lengths
        if rng is None:
            return [np.arange(s, min(s + batch_size, len(self))) for s in range(0, len(self), batch_size)]
        return length_bucketed_order(lengths, batch_size, rng)


def _cut(record: dict, ids_key: str, length_key: str) -> list:
    """The real ids of a record, padding dropped when it came through ``seqtool pad``."""
    ids = record[ids_key]
    n = record.get(length_key)
    return ids if n is None else ids[:n]


def collect(records, task: str, name: str = "<input>", char_index: dict | None = None) -> TaskData:
    """TaskData from records that carry ids (vocab.encode output or ``seqtool pad`` lines).

    With ``char_index`` (a Vocab's ``chars.index``) the records' ``tokens`` also
    become the character column (charfeatures.char_matrix).
    """
    tokens, tags, labels, tokens2 = Ragged(), Ragged() if task == "tagger" else None, [], None
    words = [] if char_index is not None else None
    batch_numbers = []
    if task == "siamese":
        tokens2 = Ragged()
    for n, r in enumerate(records, 1):
        batch_numbers.append(r.get("batch"))
        if task == "siamese":
            if "q1_ids" not in r:
                raise DataError(f"record {n} is not a pair (needs \"q1\" and \"q2\")", name)
            tokens.append(_cut(r, "q1_ids", "q1_length"))
            tokens2.append(_cut(r, "q2_ids", "q2_length"))
            labels.append(int(r.get("is_duplicate", -1)))
            continue
        if "ids" not in r:
            raise DataError(f"record {n} has no tokens (needs \"tokens\" or \"text\")", name)
        tokens.append(_cut(r, "ids", "length"))
        if words is not None:
            words.append(_words(r, n, name))
        if task == "tagger":
            if "tag_ids" not in r:
                raise DataError(f"record {n} has no \"tags\": every training record of a tagger needs them", name)
            tags.append(_cut(r, "tag_ids", "length"))
        elif task == "classifier":
            if "label_id" not in r:
                raise DataError(f"record {n} has no \"label\": every training record of a classifier needs one",
                                name)
            labels.append(r["label_id"])
    return TaskData(task, tokens.finish(), tags.finish() if tags is not None else None,
                    np.asarray(labels, np.int64) if task != "tagger" else None,
                    tokens2.finish() if tokens2 is not None else None,
                    char_matrix(words, char_index) if words is not None else None,
                    groups=pad_batches(batch_numbers))


def pad_batches(batch_numbers: list) -> list | None:
    """The batches of records that came through ``seqtool pad`` (each has a "batch" number, and a batch's
    records are consecutive lines): index arrays cut where the number changes. None when any record
    has no number (not pad's output)."""
    if not batch_numbers or any(b is None for b in batch_numbers):
        return None
    numbers = np.asarray(batch_numbers)
    starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
    ends = np.r_[starts[1:], len(numbers)]
    return [np.arange(s, e) for s, e in zip(starts, ends)]


def _words(record: dict, n: int, name: str) -> list:
    """The token strings of a record, as many as its ids (for the character column)."""
    words = record.get("tokens")
    size = len(_cut(record, "ids", "length"))
    if words is None or len(words) < size:
        raise DataError(f"record {n} has no \"tokens\" to read characters from", name)
    return words[:size]


# ---------------------------------------------------------------- siamese batches

def duplicate_batches(n: int, clusters: np.ndarray, units: list | None, batch_size: int,
                      rng: np.random.Generator | None) -> list[np.ndarray]:
    """One epoch of index arrays, no cluster twice in a batch, the rows of a unit together.

    Units (single rows unless training_pairs made pairs of them) are taken in
    shuffled order; a unit that does not fit the batch being filled (a cluster
    already there, or no room) waits for the next batch (checked first there),
    so every row is used once per epoch. Without rng the order is plain.
    """
    if rng is None:
        return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    units = units or [np.array([r]) for r in range(n)]
    order = [units[u] for u in rng.permutation(len(units))]
    batches, waiting = [], []
    while order or waiting:
        batch, seen, still_waiting = [], set(), []
        for unit in waiting:
            if not _add_unit(unit, batch, seen, clusters, batch_size):
                still_waiting.append(unit)
        while order and len(batch) < batch_size:
            unit = order.pop()
            if not _add_unit(unit, batch, seen, clusters, batch_size):
                still_waiting.append(unit)
        waiting = still_waiting
        if len(batch) >= 2:                 # the loss needs a negative
            batches.append(np.array(batch, dtype=np.int64))
        elif not order:
            break                           # only rows of one cluster are left: no negatives for them
    return batches


def _add_unit(unit: np.ndarray, batch: list, seen: set, clusters: np.ndarray, batch_size: int) -> bool:
    """Put the rows of ``unit`` in ``batch`` if there is room and none of their clusters is there yet."""
    if len(batch) + len(unit) > batch_size or any(clusters[r] in seen for r in unit):
        return False
    batch.extend(unit.tolist())
    seen.update(clusters[r] for r in unit)
    return True
