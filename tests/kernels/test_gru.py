"""GRU kernels (seqtool/kernels/gru.py, the seed's formula): the shared checks of reference.CellChecks, and
parity with our formula written in torch autograd (PyTorch's own GRU applies r after the product h W_c)."""
import pytest
from oracles import CellChecks, gru_reference, parity_errors

from seqtool.kernels.gru import gru_backward, gru_forward


class TestGRU(CellChecks):
    G = 3
    forward, backward = staticmethod(gru_forward), staticmethod(gru_backward)

    def reference(self, xp, w_h, lengths, options):
        return gru_reference(xp, w_h, lengths)


def torch_gru(torch, x, w_x, b, w_h, lengths):
    """Our GRU in torch autograd on padded x (B, T, D); stream 1 runs on each sequence reversed."""
    B, T, _ = x.shape
    S, H = w_h.shape[0], w_h.shape[1]
    t = torch.arange(T)
    live = t[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    rev = torch.where(live, torch.tensor(lengths)[:, None] - 1 - t[None, :], t[None, :])  # an involution
    rows = torch.arange(B)[:, None]
    out = []
    for s in range(S):
        xp = (x if s == 0 else x[rows, rev]) @ w_x[s] + b[s]
        h, hs = torch.zeros(B, H, dtype=x.dtype), []
        for step in range(T):
            a = xp[:, step]
            r = torch.sigmoid(a[:, :H] + h @ w_h[s][:, :H])
            u = torch.sigmoid(a[:, H:2 * H] + h @ w_h[s][:, H:2 * H])
            c = torch.tanh(a[:, 2 * H:] + (r * h) @ w_h[s][:, 2 * H:])
            m = live[:, step, None]
            h = torch.where(m, (1 - u) * h + u * c, h)
            hs.append(torch.where(m, h, 0.0))
        y = torch.stack(hs, 1)
        out.append(y if s == 0 else y[rows, rev])
    return torch.cat(out, -1)


@pytest.mark.requires_torch
@pytest.mark.parametrize("S", [1, 2])
def test_matches_our_formula_in_torch(torch, S):
    D, H = 4, 3
    gen = torch.Generator().manual_seed(1)
    w_x, b, w_h = (torch.randn(shape, dtype=torch.float64, generator=gen).requires_grad_()
                   for shape in ((S, D, TestGRU.G * H), (S, TestGRU.G * H), (S, H, TestGRU.G * H)))
    params = lambda grad: [(t.grad if grad else t.detach()).numpy() for t in (w_x, b, w_h)]
    errors = parity_errors(torch, lambda x: torch_gru(torch, x, w_x, b, w_h, CellChecks.RAGGED), params,
                           gru_forward, gru_backward, CellChecks.RAGGED, D)
    assert max(errors.values()) < 1e-5, errors
