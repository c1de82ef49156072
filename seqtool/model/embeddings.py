"""Pretrained word vectors: fill a model's word Embedding from a GloVe / word2vec text file.

The file has one word per line followed by its numbers, separated by spaces;
word2vec's first line ``<count> <dim>`` is optional, and ``.gz`` files are
read through gzip. A vocabulary word takes the vector of the same word in the
file, else (the fallback) of any file word with the same lower-cased form, so
"Paris" finds GloVe's "paris" and a lower-cased vocabulary's "paris" finds a
cased file's "Paris". Words the file lacks keep their random initialisation.
"""
import gzip
from dataclasses import dataclass

import numpy as np

from seqtool.errors import DataError, UsageError
from seqtool.model.layers import Embedding


class FrozenEmbedding(Embedding):
    """An Embedding whose table is not trained (--freeze-embeddings): backward adds no gradient."""

    def forward(self, ids, ctx, train):
        y, _ = super().forward(ids, ctx, train)
        return y, lambda dy: None

    def touched_rows(self, name):
        return np.zeros(0, dtype=np.int64)   # the optimiser's sparse step updates no row


@dataclass
class Coverage:
    exact: int        # vocabulary words found as written
    lowercase: int    # found through the lower-cased form (theirs or the file word's)
    total: int        # vocabulary words besides <PAD> and <UNK>
    dim: int

    def summary(self, path: str) -> str:
        found = self.exact + self.lowercase
        return (f"{path}: {found} of {self.total} words have a vector ({100.0 * found / max(self.total, 1):.1f}%; "
                f"{self.lowercase} through lower case)")


def _open(path: str):
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", errors="replace")
        return open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise UsageError(e.strerror or str(e), path) from None


def vector_dim(path: str) -> int:
    """The dimension of the vectors in ``path`` (from the header or the first vector line)."""
    with _open(path) as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                return int(parts[1])
            if len(parts) > 1:
                return len(parts) - 1
    raise DataError("no vectors in the file", path)


def load_vectors(path: str, words: list, table: np.ndarray) -> Coverage:
    """Copy the vectors of ``words`` (id order) found in ``path`` into ``table`` (V, d), in place.

    Reads the file once, keeping only the vectors the vocabulary asks for.
    Row 0 (<PAD>) and row 1 (<UNK>) are left as they are.
    """
    dim = table.shape[1]
    exact = {w: i for i, w in enumerate(words) if i >= 2}
    lower: dict = {}
    for i, w in enumerate(words):
        if i >= 2:
            lower.setdefault(w.lower(), []).append(i)
    got_exact, got_lower = set(), {}
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").rstrip(" ").partition(" ")
            i = exact.get(word)
            idx_lower = lower.get(word.lower()) if i is None else None
            if i is None and idx_lower is None:
                continue
            vec = np.array(rest.split(" "), dtype=np.float64) if rest else np.zeros(0)
            if vec.shape != (dim,):
                if lineno == 1 and vec.shape == (1,):
                    continue   # a word2vec header "<count> <dim>"
                raise DataError(f"vector of {vec.size} numbers, expected {dim}", path, lineno)
            if i is not None:
                table[i] = vec
                got_exact.add(i)
            else:
                for j in idx_lower:
                    got_lower.setdefault(j, vec)
    for j, vec in got_lower.items():
        if j not in got_exact:
            table[j] = vec
    n_lower = len(set(got_lower) - got_exact)
    return Coverage(len(got_exact), n_lower, max(len(words) - 2, 0), dim)
