"""LSTM kernels (seqtool/kernels/lstm.py): the shared checks of reference.CellChecks, and PyTorch parity."""
import pytest
from oracles import CellChecks, lstm_reference, nn_module_parity

from seqtool.kernels.lstm import lstm_backward, lstm_forward


class TestLSTM(CellChecks):
    G = 4
    forward, backward = staticmethod(lstm_forward), staticmethod(lstm_backward)

    def reference(self, xp, w_h, lengths, options):
        return lstm_reference(xp, w_h, lengths)


@pytest.mark.requires_torch
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch_lstm(torch, bidirectional):
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=bidirectional, dtype=torch.float64)
    errors = nn_module_parity(torch, module, lstm_forward, lstm_backward, CellChecks.RAGGED)
    assert max(errors.values()) < 1e-5, errors
