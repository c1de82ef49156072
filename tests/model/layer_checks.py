"""What the layer tests share: packed sequence lengths, a Context factory, random inputs and the float64
gradient check with its tolerance."""
import numpy as np

from seqtool.data.packing import make_packing
from seqtool.model.gradcheck import gradient_check
from seqtool.model.layers import Context

LENGTHS = [4, 1, 6, 3, 6, 2]
TOL = 1e-6


def ctx_factory(lengths=LENGTHS, seed=7):
    p = make_packing(lengths)
    return lambda: Context(p, np.random.default_rng(seed))


def random_rows(n_rows, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n_rows, d))


def assert_grads(layer, x, make_ctx, train=False):
    errors = gradient_check(layer, x, make_ctx, train)
    assert errors and max(errors.values()) < TOL, errors
