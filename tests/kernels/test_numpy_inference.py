"""kernels/reference.py (numpy inference for small inputs) against the numba kernels, layer by layer and whole models."""
import json
import subprocess
import sys

import numpy as np
import pytest

from seqtool.kernels import numpy_path as ref
from seqtool.kernels.crf import crf_marginals, crf_viterbi
from seqtool.model.layers import Context, Pool
from seqtool.data.packing import make_packing
from seqtool.model.recurrent import Recurrent
from seqtool.model.tasks import build_model, model_input, predict_logprobs, predict_tag_ids

LENGTHS = [5, 1, 3, 7, 2, 7]


def _forward(layer, x, p, reference):
    if reference:
        with ref.numpy_inference():
            return layer(x, Context(p), train=False)[0]
    return layer(x, Context(p), train=False)[0]


@pytest.mark.parametrize("cell,bidirectional,activation", [("lstm", True, "tanh"), ("lstm", False, "tanh"),
                                                           ("gru", True, "tanh"), ("rnn", True, "tanh"),
                                                           ("rnn", False, "relu")])
def test_recurrent_layer_matches_the_kernels(cell, bidirectional, activation):
    rng = np.random.default_rng(0)
    p = make_packing(LENGTHS)
    layer = Recurrent(cell, 6, 5, bidirectional=bidirectional, activation=activation, rng=rng)
    x = rng.normal(size=(sum(LENGTHS), 6)).astype(np.float32)
    np.testing.assert_allclose(_forward(layer, x, p, True), _forward(layer, x, p, False), atol=2e-6)


@pytest.mark.parametrize("kind", ["mean", "max", "last"])
def test_pools_match_the_kernels(kind):
    rng = np.random.default_rng(1)
    p = make_packing(LENGTHS)
    x = rng.normal(size=(sum(LENGTHS), 4)).astype(np.float32)
    layer = Pool(kind, bidirectional=True)
    np.testing.assert_allclose(_forward(layer, x, p, True), _forward(layer, x, p, False), rtol=1e-6)


def test_crf_viterbi_and_marginals_match_the_kernels():
    rng = np.random.default_rng(2)
    p = make_packing(LENGTHS)
    K = 5
    em = rng.normal(size=(sum(LENGTHS), K)).astype(np.float32) * 3
    trans, start, end = rng.normal(size=(K, K)), rng.normal(size=K), rng.normal(size=K)
    trans[0, 3] = -1e4                                     # a forbidden transition, as BIO constraints add
    args = (trans, start, end, p.offsets, p.lengths[p.order])
    best, score = ref.crf_viterbi(em, *args)
    kbest, kscore = crf_viterbi(em, *args)
    np.testing.assert_array_equal(best, kbest)
    np.testing.assert_allclose(score, kscore, rtol=1e-10)
    marg, log_z = ref.crf_marginals(em, *args)
    kmarg, klog_z = crf_marginals(em, *args)
    np.testing.assert_allclose(marg, kmarg, atol=1e-10)
    np.testing.assert_allclose(log_z, klog_z, rtol=1e-10)


def _batch(lengths, n_vocab, seed, chars=False):
    from seqtool.data.dataset import Ragged, make_batch

    rng = np.random.default_rng(seed)
    ids = Ragged([rng.integers(1, n_vocab, n) for n in lengths]).finish()
    char_col = None
    if chars:
        n = sum(lengths)
        char_col = np.zeros((n, 21), dtype=np.int32)
        char_col[:, 0] = rng.integers(1, 10, n)
        for i in range(n):
            char_col[i, 1:1 + rng.integers(1, 21)] = rng.integers(1, 12)
    return make_batch(np.arange(len(lengths)), ids, chars=char_col)


@pytest.mark.parametrize("cfg", [
    dict(task="tagger", cell="lstm", bidirectional=True, layers=2, crf=True, char=True, shape_dim=4),
    dict(task="tagger", cell="gru", bidirectional=True, layers=1, crf=False, char=False, shape_dim=0),
    dict(task="classifier", cell="lstm", bidirectional=True, layers=1, pool="last"),
    dict(task="classifier", cell="none", bidirectional=False, layers=1, pool="mean"),
])
def test_whole_models_predict_the_same(cfg):
    base = dict(embed=8, hidden=6, dropout=0.3, activation="tanh", residual=False, pool="mean", margin=0.25,
                char_dim=5, char_filters=7, char_window=3, bio_constraints=True)
    cfg = {**base, **cfg}
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    model = build_model(cfg, 40, 5 if cfg["task"] == "tagger" else 3, seed=4, n_chars=12, tag_names=tags)
    b = _batch(LENGTHS, 40, 5, chars=bool(cfg.get("char") or cfg.get("shape_dim")))
    x = model_input(model, b)
    if cfg["task"] == "tagger":
        with ref.numpy_inference():
            best, prob = predict_tag_ids(model, x, b.packing)
        kbest, kprob = predict_tag_ids(model, x, b.packing)
        np.testing.assert_array_equal(best, kbest)
        np.testing.assert_allclose(prob, kprob, atol=2e-6)
    else:
        with ref.numpy_inference():
            logp = predict_logprobs(model, x, b.packing)
        np.testing.assert_allclose(logp, predict_logprobs(model, x, b.packing), atol=2e-6)


def test_numpy_inference_has_no_backward():
    layer = Recurrent("lstm", 3, 2)
    with ref.numpy_inference():
        _, backward = layer(np.ones((3, 3), np.float32), Context(make_packing([3])), train=False)
    with pytest.raises(RuntimeError):
        backward(np.ones((3, 2), np.float32))


SMALL_TAG = """
import sys, io
from seqtool.stages.tag import run_tag
buf = io.BytesIO()
run_tag(sys.argv[1], sys.argv[2], buf)
print(buf.getvalue().decode(), end="")
print("NUMBA_IMPORTED" if "numba" in sys.modules else "NUMBA_NOT_IMPORTED", file=sys.stderr)
"""


def test_tag_on_a_small_input_never_imports_numba_and_equals_the_kernels(tmp_path, sample_data):
    from seqtool.stages.train import run_train

    model = str(tmp_path / "m")
    run_train(str(sample_data / "ner.jsonl"), output=model, epochs=1, hidden=8, embed=8, progress=False)
    records = [json.loads(line) for line in (sample_data / "ner_dev.jsonl").read_text().splitlines()][:20]
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = subprocess.run([sys.executable, "-c", SMALL_TAG, model, str(small)], capture_output=True, text=True,
                         check=True)
    assert run.stderr.strip().endswith("NUMBA_NOT_IMPORTED"), run.stderr
    from seqtool.predict import LoadedModel, predict_chunk

    loaded = LoadedModel(model)
    expected = predict_chunk(loaded, [loaded.encode(r) for r in records])   # numba kernels, in this process
    got = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["tags"] for r in got] == [r["tags"] for r in expected]
    for g, e in zip(got, expected):
        assert [x["score"] for x in g["entities"]] == pytest.approx([x["score"] for x in e["entities"]], abs=1e-4)
