import json
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtool.errors import DataError
from seqtool.data.metrics import (ClassifierScorer, EntityScorer, PairScorer, TokenAccuracy, best_threshold,
                             format_classifier_report, format_entity_report, format_pair_report,
                             masked_accuracy, pair_metrics, roc_auc, spans)

# ---------------------------------------------------------------- token accuracy


def test_masked_accuracy_ignores_padding():
    gold = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    pred = np.array([[1, 9, 3, 0], [4, 5, 7, 7]])   # padding positions differ: must not count
    mask = gold != 0
    assert masked_accuracy(gold, pred, mask) == 4 / 5
    assert masked_accuracy(gold, pred, np.zeros_like(mask)) == 0.0


def test_token_accuracy_streams_and_merges():
    a, b = TokenAccuracy(), TokenAccuracy()
    a.add([[1, 2]], [[1, 3]], [[1, 1]])
    b.add([[5, 6, 7]], [[5, 6, 0]], [[1, 1, 0]])
    assert a.merge(b).result() == {"accuracy": 0.75, "correct": 3, "tokens": 4}
    with pytest.raises(ValueError, match="shapes differ"):
        a.add([[1, 2]], [[1]], [[1, 1]])


# ---------------------------------------------------------------- spans


@pytest.mark.parametrize("tags, expected", [
    ("B-PER I-PER O B-LOC", [("PER", 0, 2), ("LOC", 3, 4)]),
    ("O I-PER I-PER O", [("PER", 1, 3)]),                       # I- without B- starts a chunk
    ("I-PER", [("PER", 0, 1)]),                                 # ... also at the sentence start
    ("B-PER I-LOC I-LOC", [("PER", 0, 1), ("LOC", 1, 3)]),      # I-X after B-Y: new chunk of X
    ("B-PER B-PER", [("PER", 0, 1), ("PER", 1, 2)]),            # consecutive entities
    ("O O B-LOC I-LOC", [("LOC", 2, 4)]),                       # entity at the sentence end
    ("B-MISC-X I-MISC-X", [("MISC-X", 0, 2)]),                  # conlleval splits at the first hyphen
    ("O O", []),
    ("", []),
])
def test_spans(tags, expected):
    assert spans(tags.split()) == expected


@pytest.mark.parametrize("tag", ["PER", "B-", "E-PER", "b-PER", "BPER"])
def test_spans_rejects_non_iob2_tags(tag):
    with pytest.raises(DataError) as e:
        spans(["O", tag])
    assert str(e.value) == f"tag {tag!r} is not O, B-<type> or I-<type>"


# ---------------------------------------------------------------- entity scores


def score(*pairs):
    s = EntityScorer()
    for gold, pred in pairs:
        s.add(gold.split(), pred.split())
    return s.result()


def test_boundary_error():
    # gold PER(0,2) LOC(3,4); pred PER(0,1) LOC(3,4): conlleval ends the predicted PER at
    # token 1 (B then O) while the gold one goes on, so only LOC is correct: P = R = 1/2.
    r = score(("B-PER I-PER O B-LOC", "B-PER O O B-LOC"))
    assert (r["correct"], r["gold"], r["pred"]) == (1, 2, 2)
    assert (r["precision"], r["recall"], r["f1"]) == (0.5, 0.5, 0.5)
    assert r["accuracy"] == 3 / 4                  # token 1: I-PER vs O


def test_type_error():
    # Same bounds, other type: no correct chunk; PER has recall 0, ORG precision 0.
    r = score(("B-PER I-PER", "B-ORG I-ORG"))
    assert (r["correct"], r["f1"]) == (0, 0.0)
    assert r["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0, "pred": 1, "correct": 0}
    assert r["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 1, "pred": 0, "correct": 0}


def test_stray_inside_tag_matches_begin_tag():
    # conlleval: after O, I-PER starts a chunk (startOfChunk O,I), so gold O I-PER I-PER O
    # holds PER(1,3), the same chunk as B-PER I-PER: correct, though token 1's tags differ.
    r = score(("O I-PER I-PER O", "O B-PER I-PER O"))
    assert (r["correct"], r["gold"], r["pred"], r["f1"]) == (1, 1, 1, 1.0)
    assert r["accuracy"] == 3 / 4


def test_consecutive_entities():
    # gold B-PER B-PER is two one-token chunks; pred B-PER I-PER is one two-token chunk.
    r = score(("B-PER B-PER", "B-PER I-PER"))
    assert (r["correct"], r["gold"], r["pred"]) == (0, 2, 1)


def test_sentences_do_not_join():
    # conlleval's blank line is O: a chunk at one sentence's end and I-PER at the next
    # one's start are two chunks, not one.
    r = score(("B-PER", "B-PER"), ("I-PER", "I-PER"))
    assert (r["correct"], r["gold"], r["pred"]) == (2, 2, 2)
    assert score(("B-PER I-PER", "B-PER I-PER"))["gold"] == 1


CORPUS = [
    # gold PER(0,2) LOC(3,4); pred PER(0,2) ORG(3,4). PER correct. Tags equal: 5 of 6.
    ("B-PER I-PER O B-LOC O O", "B-PER I-PER O B-ORG O O"),
    # gold PER(0,1) PER(2,3) PER(3,4) (stray I-, consecutive B-); pred PER(0,1) PER(2,4).
    # PER(0,1) correct. Tags equal: 2 of 4.
    ("I-PER O B-PER B-PER", "B-PER O B-PER I-PER"),
    # gold LOC(1,3) at the sentence end; pred LOC(1,2) ORG(2,3) (I-ORG after B-LOC starts
    # a chunk). None correct. Tags equal: 2 of 3.
    ("O B-LOC I-LOC", "O B-LOC I-ORG"),
]


def test_conlleval_report_by_hand():
    # Totals: 13 tokens, 9 equal tags -> accuracy 69.23%. Gold chunks 6 (PER 4, LOC 2),
    # found 6 (PER 3, ORG 2, LOC 1), correct 2 (PER) -> P = R = F = 33.33.
    # PER: P = 100*2/3 = 66.67, R = 100*2/4 = 50.00, FB1 = 2*66.67*50/116.67 = 57.14, found 3.
    # LOC: 0 of 1 found, 0 of 2 gold; ORG: 0 of 2 found. conlleval prints:
    expected = (
        "processed 13 tokens with 6 phrases; found: 6 phrases; correct: 2.\n"
        "accuracy:  69.23%; precision:  33.33%; recall:  33.33%; FB1:  33.33\n"
        "              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
        "              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  2\n"
        "              PER: precision:  66.67%; recall:  50.00%; FB1:  57.14  3\n")
    r = score(*CORPUS)
    assert format_entity_report(r) == expected
    assert r["per_type"]["PER"]["f1"] == pytest.approx(4 / 7)
    assert (r["tokens"], r["correct_tags"]) == (13, 9)


def test_empty_report_is_conllevals():
    assert format_entity_report(EntityScorer().result()) == \
        "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"


def test_length_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="^3 gold tags but 2 predicted tags$"):
        EntityScorer().add(["O", "O", "O"], ["O", "O"])


def conlleval_reference(sentences):
    """conlleval's token-by-token bookkeeping, rewritten for B/I/O tags: the oracle.

    Sentences are joined with boundary tokens tagged O in both columns, as the script
    treats a blank line; a chunk is counted correct when both columns start one of the
    same type at a token and both end it at the same later token.
    """
    def split(tag):
        return ("O", "") if tag == "O" else (tag[0], tag[2:])

    def end(prev, tag, prev_type, typ):      # endOfChunk, restricted to B, I, O
        return (prev in "BI" and tag in "BO") or (prev != "O" and prev_type != typ)

    def start(prev, tag, prev_type, typ):    # startOfChunk, restricted to B, I, O
        return tag == "B" or (prev == "O" and tag == "I") or (tag != "O" and prev_type != typ)

    tokens = []
    for gold, pred in sentences:
        tokens += [(False, g, p) for g, p in zip(gold, pred)] + [(True, "O", "O")]
    c = {"gold": Counter(), "pred": Counter(), "correct": Counter(), "tokens": 0, "correct_tags": 0}
    last_c, last_g, last_ct, last_gt, in_correct = "O", "O", "", "", False
    for boundary, gold, pred in tokens:
        (cor, ct), (gue, gt) = split(gold), split(pred)
        if in_correct:
            ec, eg = end(last_c, cor, last_ct, ct), end(last_g, gue, last_gt, gt)
            if ec and eg and last_gt == last_ct:
                in_correct = False
                c["correct"][last_ct] += 1
            elif ec != eg or gt != ct:
                in_correct = False
        sc, sg = start(last_c, cor, last_ct, ct), start(last_g, gue, last_gt, gt)
        in_correct = in_correct or (sc and sg and gt == ct)
        c["gold"][ct] += sc
        c["pred"][gt] += sg
        if not boundary:
            c["tokens"] += 1
            c["correct_tags"] += cor == gue and ct == gt
        last_c, last_g, last_ct, last_gt = cor, gue, ct, gt
    return c


TAGS = st.sampled_from(["O", "O", "B-A", "I-A", "B-B", "I-B", "I-A-X"])
SENTENCES = st.lists(st.integers(0, 8).flatmap(
    lambda n: st.tuples(st.lists(TAGS, min_size=n, max_size=n), st.lists(TAGS, min_size=n, max_size=n))),
    max_size=6)


@settings(max_examples=300, deadline=None)
@given(SENTENCES)
def test_counts_match_conlleval_reference(sentences):
    s = EntityScorer()
    for gold, pred in sentences:
        s.add(gold, pred)
    ref = conlleval_reference(sentences)
    assert (+s.gold, +s.pred, +s.correct) == (+ref["gold"], +ref["pred"], +ref["correct"])
    assert (s.tokens, s.correct_tags) == (ref["tokens"], ref["correct_tags"])


@settings(max_examples=100, deadline=None)
@given(SENTENCES, st.integers(0, 6))
def test_entity_merge_equals_single_pass(sentences, cut):
    whole, left, right = EntityScorer(), EntityScorer(), EntityScorer()
    for i, (gold, pred) in enumerate(sentences):
        whole.add(gold, pred)
        (left if i < cut else right).add(gold, pred)
    assert left.merge(right).result() == whole.result()
    # Counts travel between processes as JSON, exactly.
    assert EntityScorer.from_dict(json.loads(json.dumps(whole.to_dict()))).result() == whole.result()


# ---------------------------------------------------------------- classifiers


def crafted_classifier():
    # rows gold, columns predicted, labels neg, neu, pos:
    #   neg [3, 1, 1]   neu [1, 1, 0]   pos [0, 1, 3]
    pairs = [("neg", "neg")] * 3 + [("neg", "neu"), ("neg", "pos"), ("neu", "neu"), ("neu", "neg")] + \
            [("pos", "pos")] * 3 + [("pos", "neu")]
    s = ClassifierScorer()
    s.add([g for g, _ in pairs], [p for _, p in pairs])
    return s


def test_classifier_metrics_by_hand():
    r = crafted_classifier().result()
    assert r["labels"] == ["neg", "neu", "pos"]
    assert r["confusion"] == [[3, 1, 1], [1, 1, 0], [0, 1, 3]]
    assert (r["n"], r["accuracy"]) == (11, 7 / 11)
    # neg: P 3/4, R 3/5, F 2/3; neu: P 1/3, R 1/2, F 2/5; pos: P 3/4, R 3/4, F 3/4.
    neg, neu, pos = (r["per_class"][k] for k in ("neg", "neu", "pos"))
    assert (neg["precision"], neg["recall"], neg["f1"]) == pytest.approx((3 / 4, 3 / 5, 2 / 3))
    assert (neu["precision"], neu["recall"], neu["f1"]) == pytest.approx((1 / 3, 1 / 2, 2 / 5))
    assert (pos["precision"], pos["recall"], pos["f1"]) == pytest.approx((3 / 4, 3 / 4, 3 / 4))
    assert (neg["gold"], neg["pred"], neg["correct"]) == (5, 4, 3)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2 / 5 + 3 / 4) / 3)


def test_classifier_report():
    assert format_classifier_report(crafted_classifier().result()) == (
        "processed 11 examples with 3 classes; accuracy:  63.64%; macro FB1:  60.56\n"
        "              neg: precision:  75.00%; recall:  60.00%; FB1:  66.67  4\n"
        "              neu: precision:  33.33%; recall:  50.00%; FB1:  40.00  3\n"
        "              pos: precision:  75.00%; recall:  75.00%; FB1:  75.00  4\n"
        "confusion (rows: gold, columns: predicted):\n"
        "       neg   neu   pos\n"
        " neg     3     1     1\n"
        " neu     1     1     0\n"
        " pos     0     1     3\n")


def test_classifier_label_order_and_declared_labels():
    s = ClassifierScorer(labels=[np.int64(7)])
    s.add(np.array([10, 2, 1]), [10, 2, 2])
    r = s.result()
    assert r["labels"] == [1, 2, 7, 10]                 # numeric order, declared 7 reported
    assert r["per_class"]["7"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0, "pred": 0, "correct": 0}
    assert r["macro_f1"] == pytest.approx((0 + 2 / 3 + 0 + 1) / 4)
    assert ClassifierScorer(labels=["b", 3]).labels() == [3, "b"]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abcd"))), st.integers(0, 20))
def test_classifier_merge_equals_single_pass(pairs, cut):
    whole, left, right = ClassifierScorer(["z"]), ClassifierScorer(["z"]), ClassifierScorer()
    for i, (g, p) in enumerate(pairs):
        whole.add([g], [p])
        (left if i < cut else right).add([g], [p])
    assert left.merge(right).result() == whole.result()
    assert ClassifierScorer.from_dict(json.loads(json.dumps(whole.to_dict()))).result() == whole.result()


def test_merge_refuses_another_kind():
    with pytest.raises(TypeError, match="cannot merge EntityScorer into ClassifierScorer"):
        ClassifierScorer().merge(EntityScorer())


# ---------------------------------------------------------------- pairs

def brute_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    twice = sum(2 * (p > n) + (p == n) for p in pos for n in neg)
    return twice / (2 * len(pos) * len(neg))


# Scores on a coarse grid so that ties are common.
PAIRS = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-4, 4).map(lambda k: k / 4), min_size=n, max_size=n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n)))


@settings(max_examples=200, deadline=None)
@given(PAIRS)
def test_roc_auc_equals_pairwise_count(data):
    s, y = map(np.array, data)
    if 0 < y.sum() < len(y):
        assert roc_auc(s, y) == brute_auc(s, y)
    else:
        assert roc_auc(s, y) is None


def test_roc_auc_by_hand():
    # positives 0.9, 0.5; negatives 0.5, 0.1: wins 0.9>0.5, 0.9>0.1, 0.5>0.1, tie 0.5=0.5 -> 3.5/4
    assert roc_auc([0.1, 0.5, 0.5, 0.9], [0, 1, 0, 1]) == 0.875


@settings(max_examples=200, deadline=None)
@given(PAIRS)
def test_best_threshold_equals_brute_force(data):
    s, y = map(np.array, data)
    # Every cut: each distinct score as a ">=" threshold, plus one above them all.
    candidates = sorted(set(s.tolist())) + [s.max() + 1]

    def rank(tau):
        m = pair_metrics(s, y, tau)
        return (Fraction(m["tp"] + m["tn"]), Fraction(2 * m["tp"], max(1, 2 * m["tp"] + m["fp"] + m["fn"])), -tau)
    want = max(candidates, key=rank)
    tau, got = best_threshold(s, y)
    assert list(s >= tau) == list(s >= want)
    assert got == pair_metrics(s, y, tau) == {**pair_metrics(s, y, want), "threshold": tau}
    # tau sits strictly between the last negative and the first positive score.
    below, above = s[s < tau], s[s >= tau]
    if len(below) and len(above):
        assert tau == (below.max() + above.min()) / 2


def test_best_threshold_by_hand():
    # cuts: all positive acc 2/4; >=0.3 acc 3/4 F1 4/5; >=0.7 acc 3/4 F1 2/3; none acc 2/4.
    tau, m = best_threshold([0.1, 0.5, 0.5, 0.9], [0, 1, 0, 1])
    assert tau == pytest.approx(0.3)
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["accuracy"], m["f1"]) == (2, 1, 0, 1, 0.75, 0.8)


def test_best_threshold_extreme_scores():
    a = 1.0
    b = float(np.nextafter(a, 2))        # no float strictly between: tau must be b
    tau, m = best_threshold([a, b], [0, 1])
    assert tau == b and m["accuracy"] == 1.0
    tau, m = best_threshold([-1.7e308, 1.7e308], [0, 1])   # (a + b) / 2 would overflow
    assert tau == 0.0 and m["accuracy"] == 1.0
    tau, m = best_threshold([0.2, 0.8], [0, 0])            # nothing positive: above every score
    assert tau > 0.8 and m["tn"] == 2


def test_pair_input_errors():
    with pytest.raises(DataError, match="^2 similarities but 1 labels$"):
        pair_metrics([0.1, 0.2], [1], 0.5)
    with pytest.raises(DataError, match="^pair labels must be 0 or 1$"):
        roc_auc([0.1, 0.2], [1, 2])
    with pytest.raises(DataError, match="^similarities must be finite numbers$"):
        best_threshold([0.1, float("nan")], [1, 0])
    with pytest.raises(DataError, match="^no pairs to choose a threshold from$"):
        PairScorer().result()


@settings(max_examples=50, deadline=None)
@given(PAIRS, st.integers(0, 40))
def test_pair_merge_equals_single_pass(data, cut):
    s, y = map(np.array, data)
    whole, left, right = PairScorer(), PairScorer(), PairScorer()
    whole.add(s, y)
    left.add(s[:cut], y[:cut])
    right.add(s[cut:], y[cut:])
    assert right.merge(left).result() == whole.result()     # order does not matter either
    assert right.result(0.25) == whole.result(0.25)


def test_pair_report():
    r = PairScorer()
    r.add([0.1, 0.5, 0.5, 0.9], [0, 1, 0, 1])
    assert format_pair_report(r.result()) == (
        "processed 4 pairs with 2 positive; ROC AUC: 0.8750\n"
        "threshold: 0.3000 (tuned on these pairs); accuracy:  75.00%; "
        "precision:  66.67%; recall: 100.00%; FB1:  80.00\n")
    assert format_pair_report(pair_metrics([0.9], [1], 0.5)).startswith(
        "processed 1 pairs with 1 positive; ROC AUC: n/a\nthreshold: 0.5000; accuracy: 100.00%;")
