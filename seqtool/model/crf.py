"""The linear-chain CRF output of a tagger: loss + gradient, Viterbi, marginals, entity confidence.

    model = Serial(..., Dense(width, K), CRF(K))     # CRF.forward passes the emissions through
    em, backward = model(x, ctx, train=True)
    loss, dem = model.layers[-1].loss(em, tags, ctx.packing)   # adds into the CRF's own grads
    backward(dem)

Parameters: ``trans`` (K, K) score of tag i followed by tag j, ``start`` (K,)
and ``end`` (K,) scores of the first and last tag. The numeric work is in
seqtool/kernels/crf.py (parallel over sequences). ``allowed`` optionally
forbids transitions at decode time (BIO validity, ``bio_allowed``): forbidden
scores get FORBIDDEN added, so they are never chosen and carry ~0 marginal.
"""
import numpy as np

from seqtool.kernels import lazy
from seqtool.kernels import numpy_path as ref
from seqtool.model.layers import Layer
from seqtool.data.packing import Packing

kc = lazy("seqtool.kernels.crf")

FORBIDDEN = -1e4   # finite, so log-sum-exps stay free of inf - inf


def bio_allowed(tag_names: list) -> tuple[np.ndarray, np.ndarray] | None:
    """(allowed (K, K), allowed_start (K,)) for a BIO tag set, or None when the tags are not BIO.

    I-X may follow only B-X or I-X, and may not start a sequence.
    """
    if not tag_names or not all(t == "O" or (t[:2] in ("B-", "I-") and len(t) > 2) for t in tag_names):
        return None
    K = len(tag_names)
    allowed = np.ones((K, K), dtype=bool)
    allowed_start = np.ones(K, dtype=bool)
    for j, tj in enumerate(tag_names):
        if tj.startswith("I-"):
            allowed_start[j] = False
            for i, ti in enumerate(tag_names):
                allowed[i, j] = ti[2:] == tj[2:] and ti != "O"
    return allowed, allowed_start


class CRF(Layer):
    """Linear-chain CRF over K tags; forward is the identity on the emissions (N, K)."""

    def __init__(self, n_tags: int, dtype=np.float32):
        super().__init__()
        self.add_param("trans", np.zeros((n_tags, n_tags), dtype=dtype))
        self.add_param("start", np.zeros(n_tags, dtype=dtype))
        self.add_param("end", np.zeros(n_tags, dtype=dtype))
        self.allowed: tuple[np.ndarray, np.ndarray] | None = None   # decode-time constraints
        self.name = f"CRF_{n_tags}"

    def forward(self, x, ctx, train):
        return x, lambda dy: dy

    @staticmethod
    def _layout(em: np.ndarray, p: Packing):
        return np.ascontiguousarray(em), p.offsets, np.ascontiguousarray(p.lengths[p.order])

    def loss(self, em: np.ndarray, tags: np.ndarray, p: Packing) -> tuple[float, np.ndarray]:
        """Mean NLL per token (sum of sequence NLLs / N) and its gradient dem (N, K); adds the CRF's grads."""
        em, offsets, lengths = self._layout(em, p)
        tags = np.ascontiguousarray(tags, dtype=np.int64)
        trans, start, end = self.params["trans"], self.params["start"], self.params["end"]
        nll, log_z, alpha = kc.crf_forward(em, tags, trans, start, end, offsets, lengths)
        scale = 1.0 / em.shape[0]
        dnll = np.full(len(lengths), scale)                          # loss = scale * sum_r nll[r]
        dem, dtrans, dstart, dend = kc.crf_backward(dnll, em, tags, trans, start, end, offsets, lengths,
                                                    alpha, log_z)
        self.grads["trans"] += dtrans.sum(axis=0)                    # reduce the per-sequence slices
        self.grads["start"] += dstart.sum(axis=0)
        self.grads["end"] += dend.sum(axis=0)
        return float(nll.sum()) * scale, dem

    def _decode_params(self, constrained: bool):
        trans, start, end = self.params["trans"], self.params["start"], self.params["end"]
        if constrained and self.allowed is not None:
            allowed, allowed_start = self.allowed
            trans = trans + np.where(allowed, 0.0, FORBIDDEN).astype(trans.dtype)
            start = start + np.where(allowed_start, 0.0, FORBIDDEN).astype(start.dtype)
        return trans, start, end

    def viterbi(self, em: np.ndarray, p: Packing, constrained: bool = True) -> np.ndarray:
        """(N,) best tag per packed row (the highest-scoring whole path of each sequence)."""
        em, offsets, lengths = self._layout(em, p)
        best, _ = (ref if ref.enabled() else kc).crf_viterbi(em, *self._decode_params(constrained), offsets, lengths)
        return best

    def marginals(self, em: np.ndarray, p: Packing, constrained: bool = True) -> np.ndarray:
        """(N, K) p(y_t = j | x) per packed row (forward-backward)."""
        em, offsets, lengths = self._layout(em, p)
        marg, _ = (ref if ref.enabled() else kc).crf_marginals(em, *self._decode_params(constrained), offsets,
                                                                lengths)
        return marg


def find_crf(model: Layer) -> CRF | None:
    """The CRF output layer of a tagger built by tasks.build_model, or None."""
    last = model.layers[-1] if model.layers else None
    return last if isinstance(last, CRF) else None
