"""Pretrained word vectors: fill a model's word Embedding from a GloVe / word2vec text file.

The file has one word per line followed by its numbers, separated by spaces;
word2vec's first line ``<count> <dim>`` is optional, and ``.gz`` files are
read through gzip. The file's words join the vocabulary (``Vocab.extend``; all of
them, or the first N with --vectors-limit N, GloVe and word2vec files being
frequency-ordered), so a word that training never saw keeps its vector at tag
time. A vocabulary word takes the vector of the same word in the file, else (the
fallback) of any file word with the same lower-cased form, so "Paris" finds
GloVe's "paris" and a lower-cased vocabulary's "paris" finds a cased file's
"Paris". Words the file lacks keep their random initialisation.
"""
import gzip
import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from seqtool.data.vocab import UNK_ID, Vocab
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


def read_vectors(path: str, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """(words, (n, d) float32 vectors) of the first ``limit`` vectors of ``path`` (all when None).

    The numbers are parsed in one C pass (np.fromstring over the joined lines); only
    when their count is off are the lines checked one by one, to name the bad one.
    """
    words, rests, linenos = [], [], []
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and len(words) >= limit:
                break
            word, _, rest = line.rstrip("\n").rstrip(" ").partition(" ")
            if lineno == 1 and rest.isdigit() and word.isdigit():
                continue   # a word2vec header "<count> <dim>"
            words.append(word)
            rests.append(rest)
            linenos.append(lineno)
    if not words:
        return [], np.zeros((0, 0), np.float32)
    dim = len(rests[0].split(" "))
    try:
        with warnings.catch_warnings():   # numpy warns, or raises, at a non-number: named below
            warnings.simplefilter("ignore", DeprecationWarning)
            flat = np.fromstring(" ".join(rests), dtype=np.float32, sep=" ")
    except ValueError:
        flat = np.zeros(0, np.float32)
    if flat.size != dim * len(words) or dim == 0:
        _name_the_bad_line(path, rests, linenos, dim)
    return words, flat.reshape(len(words), dim)


def _name_the_bad_line(path: str, rests: list, linenos: list, dim: int):
    for rest, lineno in zip(rests, linenos):
        n = len(rest.split(" ")) if rest else 0
        if n != dim or dim == 0:
            raise DataError(f"vector of {n} numbers, expected {dim}", path, lineno)
        try:
            np.array(rest.split(" "), dtype=np.float32)
        except ValueError:
            raise DataError("the vector holds something that is not a number", path, lineno) from None
    raise DataError("the vectors could not be read", path)


def fill_vectors(file_words: list[str], vectors: np.ndarray, words: list, table: np.ndarray) -> np.ndarray:
    """Copy into ``table`` (V, d), in place, each vocabulary word's vector: the file word as written,
    else (the fallback) a file word with the same lower-cased form. Rows 0 (<PAD>) and 1 (<UNK>) are
    left as they are. Returns the (V,) mask of rows filled, of which ``Coverage`` counts."""
    exact: dict = {}
    lower: dict = {}
    for i, w in enumerate(file_words):           # the first (most frequent) of repeated or cased forms
        exact.setdefault(w, i)
        lower.setdefault(w.lower(), i)
    src = np.full(len(words), -1, dtype=np.int64)
    how = np.zeros(len(words), dtype=np.int8)    # 1 exact, 2 through lower case
    for i, w in enumerate(words[2:], 2):
        j = exact.get(w)
        if j is not None:
            src[i], how[i] = j, 1
        else:
            j = lower.get(w.lower())
            if j is not None:
                src[i], how[i] = j, 2
    rows = np.flatnonzero(src >= 0)
    table[rows] = vectors[src[rows]]
    return how


def load_vectors(path: str, words: list, table: np.ndarray, limit: int | None = None) -> Coverage:
    """``fill_vectors`` from the file at ``path``: the vectors of ``words`` (id order) into ``table``."""
    file_words, vectors = read_vectors(path, limit)
    if len(file_words) and vectors.shape[1] != table.shape[1]:
        raise DataError(f"vector of {vectors.shape[1]} numbers, expected {table.shape[1]}", path)
    how = fill_vectors(file_words, vectors, words, table)
    return Coverage(int((how == 1).sum()), int((how == 2).sum()), max(len(words) - 2, 0), table.shape[1])


def token_coverage(has_vector: np.ndarray, ids: np.ndarray) -> float:
    """The share of tokens (word ids, flat) whose row holds a pretrained vector."""
    return float(has_vector[ids].mean()) if len(ids) else 0.0


class Pretrained:
    """A vectors file read for training: its words join the vocabulary, its vectors fill the table.

        pre = Pretrained(path, limit, vocab)       # vocab extended in place (ids of training words kept)
        lines = pre.fill(table, {"train": ids, "dev": dev_ids})   # coverage lines for stderr
    """

    def __init__(self, path: str, limit: int | None, vocab: Vocab):
        self.path = path
        self.words, self.vectors = read_vectors(path)         # all: any training word may find its vector
        if not self.words:
            raise DataError("no vectors in the file", path)
        self.added = vocab.extend(self.words[:limit])
        self.vocab = vocab

    def fill(self, table: np.ndarray, token_ids: dict) -> list[str]:
        """Fill ``table`` (V, d); lines on the vocabulary's and the tokens' coverage (``token_ids``: name ->
        flat word ids of that data)."""
        if self.vectors.shape[1] != table.shape[1]:
            raise DataError(f"vector of {self.vectors.shape[1]} numbers, expected {table.shape[1]}", self.path)
        how = fill_vectors(self.words, self.vectors, self.vocab.words.names, table)
        n_train = len(self.vocab.words) - self.added
        coverage = Coverage(int((how[:n_train] == 1).sum()), int((how[:n_train] == 2).sum()), n_train - 2,
                            table.shape[1])
        tokens = ", ".join(f"{name} {100 * token_coverage(how > 0, ids):.1f}%" for name, ids in token_ids.items())
        return [f"{self.path}: {len(self.words)} vectors read, {self.added} words added to the vocabulary "
                f"({len(self.vocab.words)} words)",
                coverage.summary(self.path).replace(" words have", " training-vocabulary words have"),
                f"{self.path}: tokens with a vector: {tokens}"]


class TrainedRows:
    """The rows of a vectors-sized word table that training can change: the words of the training data and
    <UNK> (word dropout). A checkpoint keeps only these (TrainingState.to_checkpoint's kept_rows: the others
    are the vectors file's, or the seeded initialisation, as filled at the start) with ``start``, a
    fingerprint of the whole table at the start, so that a --resume with other vectors can be refused
    instead of training on a mixed table."""

    def __init__(self, name: str, table: np.ndarray, train_ids: np.ndarray):
        self.name = name
        self.rows = np.union1d(np.unique(train_ids), [UNK_ID]).astype(np.int64)
        self.start = hashlib.sha256(np.ascontiguousarray(table).data).hexdigest()
