"""Character-level word features: a char CNN and a word-shape embedding beside the word embedding.

    feats = WordFeatures(n_vocab, 100, n_chars, char_dim=30, char_filters=50, shape_dim=8)
    y, backward = feats((ids, chars), ctx, train)     # (N, 100 + 50 + 8)

``chars`` (N, 1 + W) int32 is built per token by ``data.chars.char_matrix``: column 0 is
the word's shape class (``word_shape``), columns 1.. its character ids
(left-aligned, 0 = past the end). A word the word vocabulary does not know
(or that word dropout turned into <UNK>) still gets its spelling, casing and
affixes through these columns.
"""
import numpy as np

from seqtool.kernels import lazy
from seqtool.kernels import numpy_path as ref
from seqtool.data.chars import N_SHAPES
from seqtool.model.layers import Embedding, Layer, xavier

kc = lazy("seqtool.kernels.chars")

class CharCNN(Layer):
    """(N, W) character ids -> (N, F): embed (C, dc), convolve (window k, F filters), max over positions."""

    def __init__(self, n_chars: int, dim: int = 30, filters: int = 50, window: int = 3, dtype=np.float32,
                 rng: np.random.Generator | None = None):
        super().__init__()
        if window % 2 != 1:
            raise ValueError(f"the character window must be odd, got {window}")
        rng = rng or np.random.default_rng(0)
        self.add_param("E", rng.normal(0.0, dim ** -0.5, size=(n_chars, dim)).astype(dtype))
        self.add_param("W", xavier(rng, window * dim, filters, (window, dim, filters), dtype))
        self.add_param("b", np.zeros(filters, dtype=dtype))
        self.name = f"CharCNN_{filters}"

    def forward(self, chars, ctx, train):
        E, W, b = self.params["E"], self.params["W"], self.params["b"]
        k, dc, F = W.shape
        chars = np.ascontiguousarray(chars)
        C = E.shape[0]
        if chars.size and (chars.min() < 0 or chars.max() >= C):
            raise ValueError(f"character ids must lie in [0, {C})")
        Wf = W.transpose(1, 0, 2).reshape(dc, k * F)           # (dc, k*F)
        P = (E @ Wf).reshape(C, k, F)                           # 1: fold the embedding into the filters
        if ref.enabled():
            return ref.char_cnn_forward(P, b, chars)[0], ref.no_backward
        y, arg = kc.char_cnn_forward(P, b, chars)               # 2: conv + max over positions (N, F)

        def backward(dy):
            dP = np.zeros_like(P)
            self.grads["b"] += kc.char_cnn_backward(dP, np.ascontiguousarray(dy), chars, arg)  # back 2
            dPf = dP.reshape(C, k * F)
            self.grads["E"] += dPf @ Wf.T                                           # back 1: dE = dP W^T
            self.grads["W"] += (E.T @ dPf).reshape(dc, k, F).transpose(1, 0, 2)     # back 1: dW = E^T dP
            return None
        return y, backward


class WordFeatures(Layer):
    """(ids (N,), chars (N, 1 + W)) -> (N, E [+ F] [+ S]): word embedding, char CNN, shape embedding."""

    reads_chars = True    # model_input gives it (ids, chars)

    def __init__(self, n_vocab: int, embed: int, n_chars: int, char_dim: int = 30, char_filters: int = 50,
                 char_window: int = 3, shape_dim: int = 0, dtype=np.float32, rng=None, word_layer=None):
        rng = rng or np.random.default_rng(0)
        layers = [word_layer or Embedding(n_vocab, embed, pad_id=0, dtype=dtype, rng=rng)]
        if char_filters > 0:
            layers.append(CharCNN(n_chars, char_dim, char_filters, char_window, dtype, rng))
        if shape_dim > 0:
            layers.append(Embedding(N_SHAPES, shape_dim, pad_id=0, dtype=dtype, rng=rng))
        super().__init__(layers)
        self.char_filters, self.shape_dim = char_filters, shape_dim
        self.width = embed + char_filters + shape_dim
        self.name = f"WordFeatures_{self.width}"

    def parts(self, ids, chars) -> list:
        """(layer, its input) per part, in column order: word embedding, char CNN, shape embedding."""
        inputs = [ids]
        if self.char_filters > 0:
            inputs.append(chars[:, 1:])
        if self.shape_dim > 0:
            inputs.append(chars[:, 0])
        return list(zip(self.layers, inputs))

    def forward(self, x, ctx, train):
        outs, backs = zip(*(layer(inp, ctx, train) for layer, inp in self.parts(*x)))
        y = np.concatenate(outs, axis=1)                         # 1: [word | chars | shape]
        cuts = np.cumsum([o.shape[1] for o in outs])[:-1]

        def backward(dy):
            for part, back in zip(np.split(dy, cuts, axis=1), backs):   # back 1: split the columns
                back(np.ascontiguousarray(part))
            return None
        return y, backward
