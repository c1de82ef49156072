"""Inference only: each distinct token's input product for the first recurrent layer, computed once.

At inference, what a model feeds its first recurrent layer for a token,
x = [E[word id] | char CNN(characters) | shape embedding], depends on the
token's string alone (its id, characters and shape all follow from it; dropout
is the identity), and so does that layer's input product

    xp[s] = x W_x[s] + b[s]          (one row of G*H per stream s)

which with the char CNN is a third of a tagger's inference arithmetic. Text
repeats its words (a chunk of 4,000 CoNLL tokens has ~1,500 distinct ones,
and few are new after the first chunks), so ``TokenCache`` keeps xp's rows per
distinct token in a table of fixed size and a chunk needs only a gather:

    cache = TokenCache.build(model, vocab)          # None when the model's layout does not allow it
    predictor, slots = cache.lookup(token_lists)     # slots: the tokens' rows, flat, in order
    predictor((packed slots), ctx)                   # predicts as ``model`` does

Rows are written once and never change (a full table stops admitting tokens:
those get rows of their own chunk, ``extra``), so chunks computed on other
threads while the table grows always read finished rows. The results equal
the model's to float32 rounding, and a token's row is the same whichever
tokens it was computed with (kernels/dense.project_rows), so output never
depends on what came earlier in the stream.
"""
import threading

import numpy as np

from seqtool.data.chars import CHAR_WIDTH, char_matrix
from seqtool.model.charfeatures import WordFeatures
from seqtool.kernels import lazy
from seqtool.model.layers import Dropout, Embedding, Layer, Serial
from seqtool.model.recurrent import Recurrent
from seqtool.data.vocab import Vocab

kd = lazy("seqtool.kernels.dense")

# The table's size: 96 MB holds 24,576 tokens of the default tagger (2 streams x 512 columns x 4 bytes).
TABLE_BYTES = 96 * 2 ** 20
PAD_SLOT = 0   # slot 0 holds the <PAD> token's row: what an (impossible) empty record would run as


class TokenCache:
    """token string -> its row of the first recurrent layer's input product (module docstring)."""

    def __init__(self, words: Layer, recurrent: Recurrent, rest: list, vocab: Vocab, capacity: int):
        self.words, self.recurrent, self.rest, self.vocab = words, recurrent, rest, vocab
        w_x = recurrent.params["w_x"]
        self.table = np.empty((w_x.shape[0], capacity, w_x.shape[2]), dtype=w_x.dtype)   # (S, capacity, G*H)
        d_in = w_x.shape[1]
        self.w_t = np.zeros((w_x.shape[0], w_x.shape[2], d_in + -d_in % 8), dtype=w_x.dtype)   # W_x^T, 0-padded
        self.w_t[:, :, :d_in] = w_x.transpose(0, 2, 1)
        self.slot: dict[str, int] = {}
        self.table[:, PAD_SLOT] = self._project(np.zeros(1, np.int64), np.zeros((1, 1 + CHAR_WIDTH), np.int32))[:, 0]
        self.size = 1
        self._adding = threading.Lock()           # chunks may be prepared on several threads (Dask workers)

    @classmethod
    def build(cls, model: Layer, vocab: Vocab, capacity: int | None = None) -> "TokenCache | None":
        """A cache for ``model`` when it reads words (and characters) into a recurrent layer, else None.

        capacity: rows in the table (default: as many as fit in TABLE_BYTES)."""
        layers = list(model.layers) if isinstance(model, Serial) else []
        if len(layers) < 2:
            return None
        words, rest = layers[0], layers[1:]
        if isinstance(rest[0], Dropout):
            rest = rest[1:]                       # the identity at inference
        if not rest or not isinstance(rest[0], Serial) or not rest[0].layers:
            return None
        stack = rest[0]
        first = stack.layers[0]
        if not isinstance(first, Recurrent) or not isinstance(words, (Embedding, WordFeatures)):
            return None                           # e.g. a residual first layer, or no recurrent layer
        if capacity is None:
            w_x = first.params["w_x"]
            capacity = max(2, TABLE_BYTES // (w_x.shape[0] * w_x.shape[2] * w_x.itemsize))
        after = [Serial(*stack.layers[1:], name=stack.name)] + rest[1:]
        return cls(words, first, after, vocab, capacity)

    def lookup(self, token_lists: list) -> tuple[Layer, np.ndarray]:
        """(the predictor for these tokens, their slots (total tokens,) int32, flat in order)."""
        get = self.slot.get
        slots = [get(token, -1) for tokens in token_lists for token in tokens]
        extra = self.table[:, :0]
        if -1 in slots:
            with self._adding:
                flat = [token for tokens in token_lists for token in tokens]
                slots = [get(token, -1) for token in flat]      # again: another thread may have added some
                new = list(dict.fromkeys(token for token, k in zip(flat, slots) if k < 0))   # distinct, in order
                extra = self._add(new)
            overflow = {token: self.table.shape[1] + i for i, token in enumerate(t for t in new if t not in self.slot)}
            slots = [k if k >= 0 else get(token, overflow.get(token)) for token, k in zip(flat, slots)]
        return Serial(CachedInput(self.table, extra, self.recurrent), *self.rest), np.asarray(slots, np.int32)

    def _add(self, tokens: list) -> np.ndarray:
        """Compute the rows of ``tokens``; those that fit go into the table, the rest are returned (S, m, G*H)."""
        rows = self._rows(tokens)
        room = min(len(tokens), self.table.shape[1] - self.size)
        if room > 0:
            self.table[:, self.size:self.size + room] = rows[:, :room]
            for i, token in enumerate(tokens[:room]):      # published after the row is written
                self.slot[token] = self.size + i
            self.size += room
        return np.ascontiguousarray(rows[:, room:])

    def _rows(self, tokens: list) -> np.ndarray:
        ids = np.array(self.vocab.word_ids(tokens), np.int64)
        # each token's characters are read once, when its row is made: no character-row cache here
        chars = char_matrix([tokens], self.vocab.chars.index) if isinstance(self.words, WordFeatures) else None
        return self._project(ids, chars)

    def _project(self, ids: np.ndarray, chars: np.ndarray | None) -> np.ndarray:
        """xp rows (S, m, G*H) of tokens given by word ids (and character rows)."""
        x, _ = self.words((ids, chars) if isinstance(self.words, WordFeatures) else ids, None, False)
        return kd.project_rows(np.ascontiguousarray(x), self.w_t, self.recurrent.params["b"])


class CachedInput(Layer):
    """Packed slots (N,) -> the first recurrent layer's output (N, S*H), its input product gathered."""

    reads_chars = False

    def __init__(self, table: np.ndarray, extra: np.ndarray, recurrent: Recurrent):
        super().__init__()
        self.table, self.extra, self.recurrent = table, extra, recurrent
        self.name = f"CachedInput({recurrent!r})"

    def forward(self, slots, ctx, train):
        if train:
            raise RuntimeError("a token cache only predicts: train the model it was built from")
        slots = np.ascontiguousarray(slots, dtype=np.int32)
        S, N = self.table.shape[0], len(slots)
        xp = np.empty((S, N, self.table.shape[2]), dtype=self.table.dtype)
        kd.gather_rows(xp[0], self.table[0], self.extra[0], slots)
        if S == 2:                                # stream 1 reads the rows reversed within each sequence
            kd.gather_rows(xp[1], self.table[1], self.extra[1], np.ascontiguousarray(slots[ctx.rev]))
        return self.recurrent.from_projection(xp, ctx), _no_backward


def _no_backward(dy):
    raise RuntimeError("a token cache has no backward")
