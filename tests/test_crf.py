"""The CRF output layer (seqtool/crf.py): loss gradient, BIO constraints, decoding."""
import numpy as np

from seqtool.crf import CRF, bio_allowed, find_crf
from seqtool.layers import Dense, Serial, numerical_gradient, relative_error
from seqtool.metrics import spans
from seqtool.packing import make_packing

TAGS = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


def _setup(dtype=np.float64, lengths=(5, 2, 4)):
    rng = np.random.default_rng(0)
    p = make_packing(list(lengths))
    crf = CRF(len(TAGS), dtype=dtype)
    for name in crf.params:
        crf.params[name][...] = rng.normal(size=crf.params[name].shape)
    em = rng.normal(size=(p.n_rows, len(TAGS))).astype(dtype)
    tags = rng.integers(0, len(TAGS), size=p.n_rows)
    return p, crf, em, tags


def test_loss_gradient_float64():
    p, crf, em, tags = _setup()
    loss, dem = crf.loss(em, tags, p)

    def f():
        return crf.loss(em, tags, p)[0]

    analytic = {k: g.copy() for k, g in crf.grads.items()}
    assert relative_error(dem, numerical_gradient(f, em)) < 1e-6
    for name in crf.params:
        assert relative_error(analytic[name], numerical_gradient(f, crf.params[name])) < 1e-6, name
    assert loss > 0


def test_forward_is_the_identity_and_find_crf():
    crf = CRF(3)
    model = Serial(Dense(4, 3), crf)
    x = np.ones((2, 3), dtype=np.float32)
    y, back = crf(x, None)
    assert y is x and back(x) is x
    assert find_crf(model) is crf
    assert find_crf(Serial(Dense(4, 3))) is None


def test_bio_allowed():
    allowed, allowed_start = bio_allowed(TAGS)
    assert allowed_start.tolist() == [True, True, True, False, False]
    assert allowed[TAGS.index("B-LOC"), TAGS.index("I-LOC")]
    assert allowed[TAGS.index("I-LOC"), TAGS.index("I-LOC")]
    assert not allowed[TAGS.index("O"), TAGS.index("I-LOC")]
    assert not allowed[TAGS.index("B-PER"), TAGS.index("I-LOC")]
    assert allowed[:, TAGS.index("O")].all()
    assert bio_allowed(["NOUN", "VERB"]) is None
    assert bio_allowed(["O", "B-X", "I-"]) is None


def test_constrained_decoding_is_valid_bio_and_marginals_sum_to_one():
    p, crf, em, tags = _setup(np.float32, lengths=(12, 9, 7, 7, 1))
    crf.params["trans"][...] = 0.0
    crf.params["start"][...] = 0.0
    em[:, 3:] += 3.0                      # I- tags score highest everywhere
    crf.allowed = bio_allowed(TAGS)
    best = crf.viterbi(em, p)
    for b in range(p.batch):
        seq = [TAGS[t] for t in best[p.rows[b, :p.lengths[b]]]]
        assert not seq[0].startswith("I-")
        for a, c in zip(seq, seq[1:]):
            assert not c.startswith("I-") or a[2:] == c[2:], seq
        assert spans(seq) is not None
    marg = crf.marginals(em, p)
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, rtol=1e-6)
    unconstrained = crf.viterbi(em, p, constrained=False)
    assert (unconstrained >= 3).all()
