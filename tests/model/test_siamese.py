"""Siamese duplicate detection: batching, the encoder's gradient, group search, train | dedupe | eval."""
import io
import json

import numpy as np
import pytest

from seqtool.data.dataset import Ragged
from seqtool.model.grouping import find_groups, nearest
from seqtool.stages.dedupe import run_dedupe
from seqtool.errors import DataError
from seqtool.data.dataset import TaskData
from seqtool.kernels.loss import triplet_loss
from seqtool.model.layers import Context
from seqtool.data.packing import make_packing
from seqtool.stages.eval import run_eval
from seqtool.model.siamese import training_pairs
from seqtool.model.tasks import build_model
from seqtool.stages.train import run_train


def pairs_data(pairs, labels):
    return TaskData("siamese", Ragged([a for a, _ in pairs]).finish(), None, np.asarray(labels),
                    Ragged([b for _, b in pairs]).finish())


def test_batches_never_hold_two_duplicates_of_one_another():
    # question [1] is a duplicate of 30 others: they form one cluster, so a batch holds at most one of them
    hub = [([1], [100 + k]) for k in range(30)]
    others = [([200 + k], [300 + k]) for k in range(40)]
    non_dup = [([1], [400])]
    data = training_pairs(pairs_data(hub + others + non_dup, [1] * 70 + [0]))
    assert len(data) == 140                                   # every duplicate pair in both orders
    clusters = data.clusters
    batches = data.batch_order(8, np.random.default_rng(0))
    used = np.concatenate(batches)
    assert len(used) == len(set(used.tolist()))               # no row twice in an epoch
    for b in batches:
        assert len(set(clusters[b].tolist())) == len(b)       # no cluster twice in a batch
        assert len(b) >= 2
    # the 40 independent pairs (80 rows) are all used; the hub cluster only as batches allow
    assert sum(clusters[i] != clusters[0] for i in used) == 80


def test_hard_negatives_add_self_rows_that_share_a_batch_with_their_non_duplicate():
    dup = [([1], [2]), ([2], [3]), ([10], [11]), ([20], [21])]
    non_dup = [([1], [50]), ([60], [70]), ([80], [90]), ([3], [1])]     # the last: 3 and 1 are duplicates (via 2)
    data = training_pairs(pairs_data(dup + non_dup, [1] * 4 + [0] * 4), hard_negatives=True)
    assert len(data) == 8 + 6                                   # both orders + two self rows per usable negative
    for r in range(8, 14):                                      # a self row is its question on both sides
        np.testing.assert_array_equal(data.tokens[r], data.tokens2[r])
    assert [u.tolist() for u in data.units[8:]] == [[8, 9], [10, 11], [12, 13]]
    assert data.clusters[8] == data.clusters[0]                 # question 1 keeps its duplicate cluster
    for seed in range(20):
        batches = data.batch_order(4, np.random.default_rng(seed))
        used = np.concatenate(batches).tolist()
        assert len(used) == len(set(used))
        for b in batches:
            assert len(set(data.clusters[b].tolist())) == len(b)
            for u in data.units[8:]:                            # a unit's rows are together or both absent
                assert np.isin(u, b).sum() in (0, 2)
        assert set(range(10, 14)) <= set(used)      # (rows of the big cluster {1,2,3} only as batches allow)


def test_gradient_check_through_the_whole_encoder_and_loss():
    cfg = dict(task="siamese", cell="lstm", bidirectional=True, layers=2, embed=5, hidden=4, dropout=0.0,
               activation="tanh", residual=False, pool="mean", margin=0.25)
    model = build_model(cfg, 30, 1, seed=3).astype(np.float64)
    rng = np.random.default_rng(1)
    l1, l2 = np.array([3, 1, 4, 2]), np.array([2, 5, 1, 3])
    p1, p2 = make_packing(l1), make_packing(l2)
    ids1, ids2 = rng.integers(1, 30, l1.sum()), rng.integers(1, 30, l2.sum())

    def loss_and_backward():
        v1, b1 = model(ids1, Context(p1), train=False)
        v2, b2 = model(ids2, Context(p2), train=False)
        loss, d1, d2 = triplet_loss(v1, v2, margin=0.7)        # a wide margin keeps every hinge active
        return loss, (b1, d1, b2, d2)

    model.zero_grads()
    _, (b1, d1, b2, d2) = loss_and_backward()
    b1(d1)
    b2(d2)
    for name, layer, local in model.walk():
        param, grad = layer.params[local], layer.grads[local]
        num = np.zeros_like(param)
        flat, nflat = param.reshape(-1), num.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
        for k in picks:
            old = flat[k]
            flat[k] = old + 1e-6
            up = loss_and_backward()[0]
            flat[k] = old - 1e-6
            down = loss_and_backward()[0]
            flat[k] = old
            nflat[k] = (up - down) / 2e-6
        a, n = grad.reshape(-1)[picks], nflat[picks]
        err = np.abs(a - n).max() / max(np.abs(a).max(), np.abs(n).max(), 1e-8)
        assert err < 1e-5, (name, err)


def test_group_search_finds_exactly_the_planted_groups_in_bounded_blocks():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 32))
    rows, truth = [], []
    for g in range(6):                          # six groups of near-identical vectors ...
        for _ in range(4):
            rows.append(centres[g] + 0.01 * rng.normal(size=32))
            truth.append(g)
    for k in range(30):                         # ... and thirty loners
        rows.append(rng.normal(size=32))
        truth.append(100 + k)
    order = rng.permutation(len(rows))
    v = np.array(rows)[order]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    truth = np.array(truth)[order]
    first, best = find_groups(v.astype(np.float32), tau=0.95, block=7)   # many block pairs, tiny slices
    for i in range(len(v)):
        same = np.flatnonzero(truth == truth[i])
        assert first[i] == same.min()
        assert np.isfinite(best[i]) == (i != same.min())
    # top-k agrees with a brute-force search
    nn = nearest(v, 3, block=5)
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    for i in range(len(v)):
        assert [j for j, _ in nn[i]] == list(np.argsort(-s[i], kind="stable")[:3])


QUESTIONS = [("how old are you", "what is your age"), ("where are you from", "what is your home town"),
             ("can you see me", "are you seeing me"), ("when is the game", "what time is the game"),
             ("how do i cook rice", "what is the way to cook rice"), ("who won the cup", "which team won the cup")]


def write_pairs(path, n, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for k in range(n):
            a, b = QUESTIONS[rng.integers(len(QUESTIONS))]
            if rng.random() < 0.5:
                f.write(json.dumps({"id": k, "q1": a, "q2": b, "is_duplicate": 1}) + "\n")
            else:
                c = QUESTIONS[(QUESTIONS.index((a, b)) + 1 + rng.integers(len(QUESTIONS) - 1)) % len(QUESTIONS)][1]
                f.write(json.dumps({"id": k, "q1": a, "q2": c, "is_duplicate": 0}) + "\n")
    return str(path)


def test_train_dedupe_eval_round_trip(tmp_path):
    train = write_pairs(tmp_path / "train.jsonl", 300, 0)
    dev = write_pairs(tmp_path / "dev.jsonl", 100, 1)
    out = str(tmp_path / "m")
    summary, _ = run_train(train, output=out, task="siamese", dev=dev, epochs=8, hidden=16, embed=16,
                           batch_size=4, progress=False)
    assert summary["dev"]["accuracy"] > 0.9, summary
    buf = io.BytesIO()
    run_dedupe(out, dev, buf)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["id"] for r in rows] == list(range(100))
    assert all(isinstance(r["is_duplicate"], bool) and -1.0001 <= r["similarity"] <= 1.0001 for r in rows)
    pred_file = tmp_path / "pred.jsonl"
    pred_file.write_bytes(buf.getvalue())
    direct, _ = run_eval(dev, model=out)
    tau = direct["threshold"]
    piped, _ = run_eval(str(pred_file), pred=True, threshold=tau)
    assert direct["accuracy"] == piped["accuracy"] and direct["auc"] == pytest.approx(piped["auc"], abs=1e-6)
    # a pair without gold is named by its line in the file, blank lines counted, for -m as for --pred
    lines = open(dev).read().splitlines()
    gaps = tmp_path / "gaps.jsonl"
    gaps.write_text("\n".join(lines[:3] + ["", ""] + [json.dumps({"q1": "a b", "q2": "c"})] + lines[3:]) + "\n")
    with pytest.raises(DataError) as e:
        run_eval(str(gaps), model=out)
    assert str(e.value) == f'{gaps}:6: pair has no gold "is_duplicate" to score against'
    # group mode over the single questions: each question's paraphrase lands in its group
    texts = tmp_path / "texts.jsonl"
    with open(texts, "w") as f:
        for a, b in QUESTIONS:
            f.write(json.dumps({"text": a}) + "\n" + json.dumps({"text": b}) + "\n")
    buf = io.BytesIO()
    run_dedupe(out, str(texts), buf, group=True)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(rows) == 12 and all("group" in r and "duplicate_of" in r for r in rows)


@pytest.mark.parametrize("options", [dict(cell="none", pool="max"),
                                     dict(bidirectional=True, pool="max", hard_negatives=True)])
def test_encoder_and_batching_variants_learn_the_pairs(tmp_path, options):
    train = write_pairs(tmp_path / "train.jsonl", 300, 0)
    dev = write_pairs(tmp_path / "dev.jsonl", 100, 1)
    summary, _ = run_train(train, output=str(tmp_path / "m"), task="siamese", dev=dev, epochs=8, hidden=16,
                           embed=16, batch_size=4, progress=False, **options)
    assert summary["dev"]["accuracy"] > 0.9, summary


def test_hard_negatives_are_a_siamese_option():
    from seqtool.errors import UsageError

    with pytest.raises(UsageError, match="--hard-negatives does not apply to --task tagger: it is for siamese"):
        run_train("x.jsonl", output="m", task="tagger", hard_negatives=True)
