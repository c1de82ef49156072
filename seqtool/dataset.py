"""Training data held compactly in memory, and the batches cut from it.

Records become flat int32 arrays plus offsets (a few bytes per token, not a
Python object per token), so a corpus of millions of tokens trains without
the interpreter's memory overhead. A batch is handed to the model packed
(seqtool/packing.py): no padding is ever computed.
"""
from dataclasses import dataclass

import numpy as np

from seqtool.packing import Packing, make_packing


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
