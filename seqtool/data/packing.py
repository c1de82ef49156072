"""Packed sequence batches: the layout every recurrent kernel works on.

A batch of B sequences with lengths L is sorted by length, longest first
(stable, so ties keep input order), and stored time-major with padding
removed, as PyTorch's PackedSequence does:

    rows offsets[t] .. offsets[t+1]-1 hold time step t of the sequences
    of rank 0 .. batch_sizes[t]-1 (rank = position after sorting).

Because the lengths are sorted, the sequences still running at step t are
always a prefix of the ranks, so step t is one contiguous block of rows and
no kernel ever touches a padding position. Row of (t, rank r) is
``offsets[t] + r``.

Reversed direction (bidirectional layers): the row holding (t, r) is swapped
with the row holding (L_r - 1 - t, r). That map is its own inverse, so
``x[rev]`` reverses every sequence within its true length and ``y[rev]``
puts the outputs back.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packing:
    lengths: np.ndarray      # (B,) int64, true lengths in input order (all >= 1)
    order: np.ndarray        # (B,) int64, order[r] = input index of rank r
    batch_sizes: np.ndarray  # (T,) int64, sequences still running at step t
    offsets: np.ndarray      # (T+1,) int64, first row of step t; offsets[T] = N
    rows: np.ndarray         # (B, T) int64, packed row of (input b, t), -1 past its length

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def batch(self) -> int:
        return len(self.lengths)

    @property
    def steps(self) -> int:
        return len(self.batch_sizes)

    def reverse_index(self) -> np.ndarray:
        """(N,) row permutation that reverses each sequence within its length (an involution)."""
        valid = self.rows >= 0                                          # (B, T)
        t_rev = np.where(valid, self.lengths[:, None] - 1 - np.arange(self.steps), 0)
        rev = np.empty(self.n_rows, dtype=np.int64)
        rev[self.rows[valid]] = np.take_along_axis(self.rows, t_rev, axis=1)[valid]   # (b, t) -> (b, L_b-1-t)
        return rev

    def last_rows(self) -> np.ndarray:
        """(B,) packed row of each input sequence's last real token, in input order."""
        return self.rows[np.arange(self.batch), self.lengths - 1]

    def sequence_index(self) -> np.ndarray:
        """(N,) input index b of the sequence each packed row belongs to."""
        seq = np.empty(self.n_rows, dtype=np.int64)
        for t in range(self.steps):
            n = self.batch_sizes[t]
            seq[self.offsets[t]:self.offsets[t] + n] = self.order[:n]
        return seq


def make_packing(lengths) -> Packing:
    """Packing for sequences of the given true lengths (each >= 1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or len(lengths) == 0:
        raise ValueError("lengths must be a non-empty 1-d array")
    if lengths.min() < 1:
        raise ValueError("every sequence needs at least one token")
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    T = int(lengths.max())
    batch_sizes = (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1).astype(np.int64)
    offsets = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(batch_sizes, out=offsets[1:])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    t = np.arange(T)
    rows = np.where(t[None, :] < lengths[:, None], offsets[:T][None, :] + rank[:, None], -1)
    return Packing(lengths, order, batch_sizes, offsets, rows.astype(np.int64))


def pack(padded: np.ndarray, p: Packing) -> np.ndarray:
    """(B, T', ...) batch-major padded array (T' >= max length) -> (N, ...) packed rows."""
    out = np.empty((p.n_rows,) + padded.shape[2:], dtype=padded.dtype)
    valid = p.rows >= 0
    out[p.rows[valid]] = padded[:, :p.steps][valid]
    return out


def unpack(packed: np.ndarray, p: Packing, total_length: int | None = None, fill=0) -> np.ndarray:
    """(N, ...) packed rows -> (B, T, ...) batch-major, padding positions set to ``fill``."""
    T = p.steps if total_length is None else total_length
    out = np.full((p.batch, T) + packed.shape[1:], fill, dtype=packed.dtype)
    valid = p.rows >= 0
    out[:, :p.steps][valid] = packed[p.rows[valid]]
    return out
