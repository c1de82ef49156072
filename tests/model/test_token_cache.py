"""token_cache.py: predictions through the per-token input-product cache equal the model's own."""
import threading

import numpy as np
import pytest

from seqtool.data.chars import char_matrix
from seqtool.data.dataset import Ragged
from seqtool.data.dataset import TaskData
from seqtool.model.inference import predict_labels, predict_tags
from seqtool.kernels.dense import gather_rows
from seqtool.model.tasks import build_model
from seqtool.model.token_cache import TokenCache
from seqtool.data.vocab import build_vocab

WORDS = ["Paris", "paris", "the", "EU", "rejects", "German", "call", "1996", "to", "boycott", "x-ray", "Ünïcode"]
TAGS = ["O", "B-X", "I-X", "B-Y", "I-Y"]
BASE = dict(embed=8, hidden=6, dropout=0.3, activation="tanh", residual=False, pool="mean", margin=0.25,
            char_dim=5, char_filters=7, char_window=3, bio_constraints=True, layers=1)


def _records(n, seed, unseen=()):
    rng = np.random.default_rng(seed)
    words = WORDS + list(unseen)
    out = []
    for _ in range(n):
        toks = [str(w) for w in rng.choice(words, size=rng.integers(1, 9))]
        out.append({"tokens": toks, "tags": [str(t) for t in rng.choice(TAGS, size=len(toks))], "label": "a"})
    return out


def _setup(cfg, lowercase=True):
    vocab = build_vocab(_records(40, 0), lowercase=lowercase)
    n_out = len(TAGS) if cfg["task"] == "tagger" else 2
    model = build_model({**BASE, **cfg}, len(vocab.words), n_out, seed=3, n_chars=len(vocab.chars), tag_names=TAGS)
    return vocab, model


def _direct(model, vocab, records, task):
    """The model's own predictions: word ids and the character column."""
    recs = [vocab.add_ids({"tokens": r["tokens"]}) for r in records]
    chars = char_matrix([r["tokens"] for r in recs], vocab.chars.index)
    data = TaskData(task, Ragged([r["ids"] for r in recs]).finish(), chars=chars)
    return list((predict_tags if task == "tagger" else predict_labels)(model, data, 7))


def _cached(cache, records, task):
    token_lists = [r["tokens"] for r in records]
    predictor, slots = cache.lookup(token_lists)
    data = TaskData(task, Ragged.from_flat(slots, [len(t) for t in token_lists]))
    return list((predict_tags if task == "tagger" else predict_labels)(predictor, data, 7))


def _assert_same(task, a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if task == "tagger":
            np.testing.assert_array_equal(x[0], y[0])
            np.testing.assert_allclose(x[1], y[1], atol=1e-5)
        else:
            np.testing.assert_allclose(x, y, atol=1e-5)


@pytest.mark.parametrize("cfg", [
    dict(task="tagger", cell="lstm", bidirectional=True, crf=True, char=True, shape_dim=4),
    dict(task="tagger", cell="lstm", bidirectional=True, layers=2, crf=False, char=False, shape_dim=0),
    dict(task="tagger", cell="gru", bidirectional=False, crf=True, char=True, shape_dim=0),
    dict(task="classifier", cell="rnn", bidirectional=True, pool="max"),
])
def test_cached_predictions_equal_the_models(cfg):
    vocab, model = _setup(cfg)
    cache = TokenCache.build(model, vocab)
    records = _records(30, 1, unseen=["Unseen", "zz9"])       # words and characters the vocabulary lacks
    _assert_same(cfg["task"], _direct(model, vocab, records, cfg["task"]), _cached(cache, records, cfg["task"]))
    # a second pass reads every row from the table
    assert all(t in cache.slot for r in records for t in r["tokens"])
    _assert_same(cfg["task"], _direct(model, vocab, records, cfg["task"]), _cached(cache, records, cfg["task"]))


def test_a_full_table_gives_new_tokens_rows_of_their_own_chunk():
    cfg = dict(task="tagger", cell="lstm", bidirectional=True, crf=True, char=True, shape_dim=4)
    vocab, model = _setup(cfg)
    cache = TokenCache.build(model, vocab, capacity=5)         # <PAD> and 4 tokens
    records = _records(20, 2, unseen=["new1", "new2", "New3"])
    _assert_same("tagger", _direct(model, vocab, records, "tagger"), _cached(cache, records, "tagger"))
    assert cache.size == 5 and len(cache.slot) == 4
    table_before = cache.table.copy()
    _assert_same("tagger", _direct(model, vocab, records[::-1], "tagger"), _cached(cache, records[::-1], "tagger"))
    np.testing.assert_array_equal(cache.table, table_before)   # rows, once written, never change


def test_the_cache_is_only_for_models_with_a_plain_first_recurrent_layer():
    vocab, model = _setup(dict(task="classifier", cell="none", bidirectional=False))
    assert TokenCache.build(model, vocab) is None
    vocab, model = _setup(dict(task="tagger", cell="lstm", bidirectional=True, crf=False, char=False, shape_dim=0,
                               residual=True, embed=12))             # d_in == 2H: the first layer is residual
    assert TokenCache.build(model, vocab) is None


def test_threads_adding_tokens_at_once_get_consistent_slots():
    cfg = dict(task="tagger", cell="lstm", bidirectional=True, crf=True, char=True, shape_dim=4)
    vocab, model = _setup(cfg)
    cache = TokenCache.build(model, vocab, capacity=60)
    chunks = [[[f"w{(i * 7 + j) % 90}" for j in range(6)] for i in range(k, k + 20)] for k in range(0, 80, 10)]
    results = [None] * len(chunks)

    def run(n):
        results[n] = cache.lookup(chunks[n])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = {}
    for chunk, (predictor, slots) in zip(chunks, results):
        extra = predictor.layers[0].extra
        for token, k in zip([t for toks in chunk for t in toks], slots):
            row = cache.table[:, k] if k < cache.table.shape[1] else extra[:, k - cache.table.shape[1]]
            if token in rows:
                np.testing.assert_array_equal(rows[token], row)     # one token, one row, whichever thread
            rows[token] = row.copy()
    assert cache.size == 60


def test_gather_rows_reads_the_table_then_the_extra_rows():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    extra = -np.arange(6, dtype=np.float32).reshape(2, 3)
    slots = np.array([3, 0, 4, 5, 1], np.int32)
    out = np.empty((5, 3), np.float32)
    gather_rows(out, table, extra, slots)
    np.testing.assert_array_equal(out, np.concatenate([table, extra])[slots])


def test_project_rows_gives_a_row_the_same_value_whatever_rows_come_with_it():
    from seqtool.kernels.dense import project_rows

    rng = np.random.default_rng(5)
    x = rng.normal(size=(37, 29)).astype(np.float32)
    wt, b = rng.normal(size=(2, 24, 29)).astype(np.float32), rng.normal(size=(2, 24)).astype(np.float32)
    full = project_rows(x, wt, b)
    np.testing.assert_allclose(full, np.matmul(x, wt.transpose(0, 2, 1)) + b[:, None, :], rtol=1e-5, atol=1e-5)
    for rows in (slice(0, 1), slice(5, 6), slice(3, 20), slice(36, 37)):
        np.testing.assert_array_equal(project_rows(np.ascontiguousarray(x[rows]), wt, b), full[:, rows])
