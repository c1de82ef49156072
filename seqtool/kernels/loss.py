"""Losses, forward and backward fused: token/sequence cross-entropy and the
Siamese triplet loss with hard negatives.

Every loss returns ``(loss, dinput)`` where dinput is the gradient of the
returned scalar, so the caller passes it straight to the model's backward.
"""
import numpy as np
from numba import njit


# ---------------------------------------------------------------- softmax cross-entropy

@njit(nogil=True, cache=True)
def _xent_rows(logits, targets, weights, scale):
    # logits (N, K), targets (N,) int, weights (N,) -> per-row loss (N,) float64,
    # dlogits (N, K) = scale * w_n * (softmax_n - onehot(y_n))
    N, K = logits.shape
    losses = np.empty(N, dtype=np.float64)
    dlogits = np.empty_like(logits)
    for n in range(N):  # serial (N*K is tiny); iteration n owns losses[n], dlogits[n]
        m = logits[n, 0]
        for k in range(1, K):
            m = max(m, logits[n, k])
        z = 0.0
        for k in range(K):
            z += np.exp(logits[n, k] - m)
        lse = m + np.log(z)                            # 1: log sum_k exp(logits[n, k])
        losses[n] = weights[n] * (lse - logits[n, targets[n]])  # 2: -w_n log p_n(y_n)
        g = scale * weights[n]
        for k in range(K):
            dlogits[n, k] = g * np.exp(logits[n, k] - lse)  # back 1: d lse / d logits = softmax
        dlogits[n, targets[n]] -= g                    # back 2: d(-logits[y]) = -1 at the target
    return losses, dlogits


def softmax_xent(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None):
    """Mean cross-entropy of softmax(logits) against integer targets, fused with its gradient.

    logits (N, K) -- one row per packed token (tagging) or per sequence (classification);
    targets (N,) int in [0, K); weights (N,) optional per-row weight or 0/1 mask.
    Returns (loss, dlogits): loss = sum_n w_n * -log p_n(y_n) / sum_n w_n (plain mean
    without weights; packed rows are all real tokens, so no mask is needed there).
    """
    targets = np.asarray(targets, dtype=np.int64)
    N, K = logits.shape
    if targets.shape != (N,):
        raise ValueError(f"targets shape {targets.shape} does not match logits {logits.shape}")
    if N and (targets.min() < 0 or targets.max() >= K):
        raise ValueError(f"targets must lie in [0, {K})")
    if weights is None:
        weights = np.ones(N, dtype=logits.dtype)
        total = float(N)
    else:
        weights = np.asarray(weights, dtype=logits.dtype)
        total = float(weights.sum(dtype=np.float64))
    if total <= 0.0:
        return 0.0, np.zeros_like(logits)
    losses, dlogits = _xent_rows(logits, targets, weights, 1.0 / total)
    return float(losses.sum()) / total, dlogits


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(N, K) -> (N, K) log-probabilities (for prediction and scoring)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def accuracy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Fraction (weighted by the 0/1 mask ``weights`` if given) of rows whose argmax is the target."""
    hit = (logits.argmax(axis=1) == np.asarray(targets)).astype(np.float64)
    if weights is None:
        return float(hit.mean()) if len(hit) else 0.0
    w = np.asarray(weights, dtype=np.float64)
    return float((hit * w).sum() / w.sum()) if w.sum() > 0 else 0.0


# ---------------------------------------------------------------- cosine similarity

def cosine_matrix(v1: np.ndarray, v2: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """(B1, d), (B2, d) -> (B1, B2) cosine similarities (rows normalised here).

    For training, normalise with the L2Normalize layer and call triplet_loss on
    the normalised rows, so the gradient flows through the normalisation.
    """
    n1 = v1 / np.maximum(np.sqrt((v1 * v1).sum(axis=1, keepdims=True)), eps)
    n2 = v2 / np.maximum(np.sqrt((v2 * v2).sum(axis=1, keepdims=True)), eps)
    return n1 @ n2.T


# ---------------------------------------------------------------- triplet loss, hard negatives

@njit(nogil=True, cache=True)
def _triplet_rows(s, margin, scale):
    # s (B, B) similarities, positives on the diagonal -> losses (B,), ds (B, B)
    B = s.shape[0]
    losses = np.empty(B, dtype=np.float64)
    ds = np.zeros_like(s)
    inv = 1.0 / (B - 1)
    for i in range(B):  # serial (B is a batch); iteration i owns losses[i], ds[i]
        pos = s[i, i]
        mean_neg = 0.0
        closest = -np.inf
        jc = -1
        for j in range(B):
            if j != i:
                mean_neg += s[i, j]
                if s[i, j] < pos and s[i, j] > closest:  # 2: hardest negative below the positive
                    closest = s[i, j]
                    jc = j
        mean_neg *= inv                                   # 1: mean of the off-diagonal entries
        if jc < 0:
            closest = mean_neg                            # 2': none below: fall back to mean_neg
        l1 = mean_neg - pos + margin                      # 3: max(mean_neg - pos + a, 0)
        l2 = closest - pos + margin                       # 4: max(closest - pos + a, 0)
        losses[i] = max(l1, 0.0) + max(l2, 0.0)
        n_mean = 0.0                                      # how many hinge terms use mean_neg
        if l1 > 0.0:                                      # back 3 (hinge active)
            ds[i, i] -= scale
            n_mean += 1.0
        if l2 > 0.0:                                      # back 4
            ds[i, i] -= scale
            if jc >= 0:
                ds[i, jc] += scale                        # back 2: gradient to the chosen negative
            else:
                n_mean += 1.0                             # back 2': through mean_neg
        if n_mean > 0.0:
            for j in range(B):                            # back 1: d mean_neg / d s[i, j] = 1/(B-1)
                if j != i:
                    ds[i, j] += n_mean * scale * inv
    return losses, ds


def triplet_loss(v1: np.ndarray, v2: np.ndarray, margin: float = 0.25, reduction: str = "sum"):
    """Triplet loss with mean and closest (hard) negatives over a batch of pairs.

    v1, v2 (B, d): encodings of the two questions of each duplicate pair, rows
    already L2-normalised (so S = v1 v2^T holds cosines). Row i of S has its
    positive S[i,i]; mean_neg_i is the mean of its off-diagonal entries;
    closest_neg_i the largest off-diagonal entry strictly below S[i,i] (mean_neg_i
    when there is none). loss = reduce_i [max(mean_neg_i - S[i,i] + margin, 0)
    + max(closest_neg_i - S[i,i] + margin, 0)], reduce = "sum" or "mean".
    Returns (loss, dv1, dv2).
    """
    loss, ds = triplet_loss_matrix(v1 @ v2.T, margin, reduction)
    return loss, ds @ v2, ds.T @ v1   # forward: S = v1 v2^T


def triplet_loss_matrix(s: np.ndarray, margin: float = 0.25, reduction: str = "sum"):
    """The loss of ``triplet_loss`` from the similarity matrix s (B, B): returns (loss, ds)."""
    B = s.shape[0]
    if s.ndim != 2 or s.shape[1] != B or B < 2:
        raise ValueError(f"need a square similarity matrix with at least 2 rows, got {s.shape}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
    scale = 1.0 if reduction == "sum" else 1.0 / B
    losses, ds = _triplet_rows(s, float(margin), scale)
    return float(losses.sum()) * scale, ds
