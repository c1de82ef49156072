"""Cross-entropy and triplet losses: hand-computed values, central differences, torch parity."""
import numpy as np
import pytest

from seqtool.kernels.loss import (accuracy, cosine_matrix, log_softmax, softmax_xent, triplet_loss,
                                  triplet_loss_matrix)
from seqtool.model.gradcheck import numerical_gradient, relative_error


def _logits(n=13, k=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)) * 3, rng.integers(0, k, size=n)


# ---------------------------------------------------------------- softmax cross-entropy

def test_xent_matches_numpy_reference():
    logits, y = _logits()
    loss, _ = softmax_xent(logits, y)
    assert loss == pytest.approx(-log_softmax(logits)[np.arange(len(y)), y].mean(), rel=1e-12)


def test_xent_is_stable_for_huge_logits():
    loss, d = softmax_xent(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([0, 1]))
    assert loss == pytest.approx(500.0)
    assert np.isfinite(d).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_xent_gradient(weighted):
    logits, y = _logits()
    w = np.random.default_rng(1).integers(0, 2, size=len(y)).astype(float) if weighted else None
    _, d = softmax_xent(logits, y, w)
    num = numerical_gradient(lambda: softmax_xent(logits, y, w)[0], logits)
    assert relative_error(d, num) < 1e-6


def test_xent_mask_averages_over_real_tokens_only():
    logits, y = _logits()
    mask = np.zeros(len(y))
    mask[:4] = 1
    loss, d = softmax_xent(logits, y, mask)
    assert loss == pytest.approx(softmax_xent(logits[:4], y[:4])[0], rel=1e-12)
    assert np.all(d[4:] == 0)


def test_xent_keeps_float32():
    logits, y = _logits()
    loss, d = softmax_xent(logits.astype(np.float32), y)
    assert d.dtype == np.float32 and isinstance(loss, float)


def test_xent_rejects_bad_targets():
    with pytest.raises(ValueError, match="targets must lie"):
        softmax_xent(np.zeros((2, 3)), np.array([0, 3]))


def test_xent_torch_parity():
    torch = pytest.importorskip("torch")
    logits, y = _logits(n=40, k=9)
    t = torch.from_numpy(logits).requires_grad_()
    ref = torch.nn.functional.nll_loss(torch.log_softmax(t, dim=1), torch.from_numpy(y))
    ref.backward()
    loss, d = softmax_xent(logits, y)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(d, t.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(log_softmax(logits), torch.log_softmax(t, 1).detach().numpy(), atol=1e-12)


def test_accuracy_with_mask():
    logits = np.array([[2.0, 1.0], [0.0, 1.0], [5.0, 0.0]])
    assert accuracy(logits, [0, 0, 0]) == pytest.approx(2 / 3)
    assert accuracy(logits, [0, 0, 0], weights=[1, 0, 1]) == 1.0


# ---------------------------------------------------------------- triplet loss with hard negatives

# The seed's 4x4 example: S[i, j] = cos(v1_i, v2_j), duplicates on the diagonal.
SEED_S = np.array([[0.9, -0.8, 0.3, -0.5],
                   [-0.8, 0.5, 0.1, -0.2],
                   [0.3, 0.1, 0.7, -0.8],
                   [-0.5, -0.2, -0.8, 1.0]])


def test_triplet_seed_example_by_hand():
    # Per row: mean_neg = mean of the 3 off-diagonal entries, closest_neg = largest
    # off-diagonal entry below the diagonal entry.
    #   row 1: pos 0.9, mean_neg = (-0.8 + 0.3 - 0.5)/3 = -1/3,  closest_neg = 0.3
    #   row 2: pos 0.5, mean_neg = (-0.8 + 0.1 - 0.2)/3 = -0.3,  closest_neg = 0.1
    #   row 3: pos 0.7, mean_neg = (0.3 + 0.1 - 0.8)/3 = -2/15,  closest_neg = 0.3
    #   row 4: pos 1.0, mean_neg = (-0.5 - 0.2 - 0.8)/3 = -0.5,  closest_neg = -0.2
    # alpha = 0.25: every hinge is negative, e.g. row 2 closest: 0.1 - 0.5 + 0.25 = -0.15,
    #   row 3 closest: 0.3 - 0.7 + 0.25 = -0.15, so the loss is 0 (the batch is already easy).
    loss, ds = triplet_loss_matrix(SEED_S, 0.25)
    assert loss == 0.0 and not ds.any()
    # alpha = 1: row 1: max(-1/3 - 0.9 + 1, 0) + max(0.3 - 0.9 + 1, 0) = 0 + 0.4
    #            row 2: max(-0.3 - 0.5 + 1, 0) + max(0.1 - 0.5 + 1, 0) = 0.2 + 0.6
    #            row 3: max(-2/15 - 0.7 + 1, 0) + max(0.3 - 0.7 + 1, 0) = 1/6 + 0.6
    #            row 4: max(-0.5 - 1 + 1, 0) + max(-0.2 - 1 + 1, 0) = 0 + 0
    #   total = 0.4 + 0.8 + 23/30 = 59/30
    loss, ds = triplet_loss_matrix(SEED_S, 1.0)
    assert loss == pytest.approx(59 / 30, rel=1e-12)
    # row 2's gradient: both hinges active: -2 on the diagonal, +1 on closest (col 3),
    # +1/3 on every off-diagonal entry from mean_neg
    np.testing.assert_allclose(ds[1], [1 / 3, -2, 1 + 1 / 3, 1 / 3])
    assert triplet_loss_matrix(SEED_S, 1.0, "mean")[0] == pytest.approx(59 / 120, rel=1e-12)


def test_triplet_closest_falls_back_to_mean_negative():
    # row 1: the positive -0.5 is below every negative: closest_neg = mean_neg = 0.2
    s = np.array([[-0.5, 0.1, 0.3],
                  [0.0, 0.9, 0.2],
                  [0.4, 0.1, 0.8]])
    loss, ds = triplet_loss_matrix(s, 0.25)
    # row 1: 2 * (0.2 + 0.5 + 0.25) = 1.9; row 2: mean 0.1 (no), closest 0.2: 0.2-0.9+0.25 < 0;
    # row 3: mean 0.25: 0.25-0.8+0.25 < 0; closest 0.4: 0.4-0.8+0.25 < 0
    assert loss == pytest.approx(1.9, rel=1e-12)
    np.testing.assert_allclose(ds[0], [-2, 1, 1])


def test_triplet_gradient_of_matrix():
    s = np.random.default_rng(0).uniform(-1, 1, size=(6, 6))
    _, ds = triplet_loss_matrix(s, 0.5)
    assert relative_error(ds, numerical_gradient(lambda: triplet_loss_matrix(s, 0.5)[0], s)) < 1e-6


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_triplet_gradient_wrt_vectors(reduction):
    rng = np.random.default_rng(2)
    v1, v2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    _, d1, d2 = triplet_loss(v1, v2, 0.3, reduction)

    def f():
        return triplet_loss(v1, v2, 0.3, reduction)[0]
    assert relative_error(d1, numerical_gradient(f, v1)) < 1e-6
    assert relative_error(d2, numerical_gradient(f, v2)) < 1e-6


def test_triplet_rejects_single_pair():
    with pytest.raises(ValueError, match="at least 2"):
        triplet_loss_matrix(np.ones((1, 1)))


def test_cosine_matrix_torch_parity():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    v1, v2 = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    ref = torch.nn.functional.cosine_similarity(torch.from_numpy(v1)[:, None], torch.from_numpy(v2)[None],
                                                dim=2)
    np.testing.assert_allclose(cosine_matrix(v1, v2), ref.numpy(), atol=1e-12)
