"""Evaluation metrics: token accuracy, conlleval entity scores, classifier and pair metrics.

The scorers are streaming accumulators of integer counts: ``add`` one sentence or
batch at a time (memory stays flat), ``merge`` another scorer's counts (exact and
order-free, for a distributed reduce), ``result()`` for a dict of numbers, and
``to_dict``/``from_dict`` to move counts between processes as JSON (never pickle).
``PairScorer`` is the exception: exact ROC AUC and the threshold search need
every similarity, so it keeps them (16 bytes a pair).

Rates in result dicts are fractions in [0, 1]. The ``format_*`` reports print them
as percentages with two decimals, as conlleval does, recomputed from the counts in
conlleval's own order of operations so the text matches it digit for digit. A rate
whose denominator is zero is 0.0 (conlleval's convention).
"""
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from seqtool.errors import DataError


def _rate(num, den, scale: float = 1.0) -> float:
    return scale * int(num) / int(den) if den else 0.0


def _prf(correct, gold, pred, scale: float = 1.0) -> dict:
    """Precision, recall and F1 from counts, computed as conlleval does (scale=100 gives its percentages)."""
    p, r = _rate(correct, pred, scale), _rate(correct, gold, scale)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0}


def _label_key(label):
    """Deterministic order for class labels: numbers ascending, then strings in code-point order."""
    return (isinstance(label, str), label)


class _Counts:
    """Integer counts that add: ``merge`` is exact; ``to_dict``/``from_dict`` round-trip through JSON."""

    def merge(self, other: "_Counts") -> "_Counts":
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(mine, Counter):
                mine.update(value)
            elif isinstance(mine, set):
                mine |= value
            else:
                setattr(self, name, mine + value)
        return self

    def to_dict(self) -> dict:
        """JSON-able counts: Counters become [key, count] lists (tuple keys become lists)."""
        out = {}
        for name, value in vars(self).items():
            if isinstance(value, Counter):
                value = [[list(k) if isinstance(k, tuple) else k, n] for k, n in value.items()]
            elif isinstance(value, set):
                value = sorted(value, key=_label_key)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict):
        obj = cls()
        if set(data) != set(vars(obj)):
            raise ValueError(f"{cls.__name__} counts need the keys {sorted(vars(obj))}, got {sorted(data)}")
        for name, value in data.items():
            mine = getattr(obj, name)
            if isinstance(mine, Counter):
                mine.update({tuple(k) if isinstance(k, list) else k: n for k, n in value})
            elif isinstance(mine, set):
                mine.update(value)
            else:
                setattr(obj, name, value)
        return obj


# ---------------------------------------------------------------- token accuracy

def _masked_counts(gold_ids, pred_ids, mask) -> tuple[int, int]:
    gold, pred = np.asarray(gold_ids), np.asarray(pred_ids)
    mask = np.asarray(mask, dtype=bool)
    if not gold.shape == pred.shape == mask.shape:
        raise ValueError(f"shapes differ: gold {gold.shape}, pred {pred.shape}, mask {mask.shape}")
    return int(np.count_nonzero((gold == pred) & mask)), int(np.count_nonzero(mask))


def masked_accuracy(gold_ids, pred_ids, mask) -> float:
    """Share of real tokens (mask true; padding excluded) whose predicted id is the gold id; 0.0 if none."""
    correct, total = _masked_counts(gold_ids, pred_ids, mask)
    return _rate(correct, total)


class TokenAccuracy(_Counts):
    """Streaming ``masked_accuracy``: ``add`` (B, T) batches, ``result()`` at the end."""

    def __init__(self):
        self.correct = 0
        self.total = 0

    def add(self, gold_ids, pred_ids, mask) -> None:
        correct, total = _masked_counts(gold_ids, pred_ids, mask)
        self.correct += correct
        self.total += total

    def result(self) -> dict:
        return {"accuracy": _rate(self.correct, self.total), "correct": self.correct, "tokens": self.total}


# ---------------------------------------------------------------- entities (conlleval)

def _split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'), 'O' -> ('O', ''); the type is all after the first hyphen, as in conlleval."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise DataError(f"tag {tag!r} is not O, B-<type> or I-<type>")


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entity chunks of one sentence of IOB2 tags: [(type, start, end_exclusive)], in order.

    Read as conlleval reads them: a chunk starts at B-X, and at an I-X that follows
    O, the sentence start or a tag of another type (a stray I- starts a chunk); it
    goes on while the next tag is I-X of the same type. B-X B-X is two chunks.
    """
    out = []
    start, kind = None, ""
    for i, tag in enumerate(tags):
        if tag == "O":                      # most tags: ends a chunk, starts none
            if start is not None:
                out.append((kind, start, i))
                start = None
            continue
        prefix, typ = _split_tag(tag)
        if start is not None and (prefix != "I" or typ != kind):
            out.append((kind, start, i))
            start = None
        if prefix != "O" and start is None:
            start, kind = i, typ
    if start is not None:
        out.append((kind, start, len(tags)))
    return out


class EntityScorer(_Counts):
    """conlleval's counts over a stream of sentences: ``add(gold_tags, pred_tags)`` per sentence.

    A predicted chunk is correct when a gold chunk has the same type, start and end.
    Token accuracy counts tokens whose whole tag (B-PER, not just PER) matches.
    """

    def __init__(self):
        self.tokens = 0
        self.correct_tags = 0
        self.gold = Counter()     # type -> chunks in the gold tags
        self.pred = Counter()     # type -> chunks in the predicted tags
        self.correct = Counter()  # type -> predicted chunks that equal a gold chunk

    def add(self, gold_tags: Sequence[str], pred_tags: Sequence[str]) -> None:
        if len(gold_tags) != len(pred_tags):
            raise DataError(f"{len(gold_tags)} gold tags but {len(pred_tags)} predicted tags")
        gold, pred = spans(gold_tags), spans(pred_tags)
        self.tokens += len(gold_tags)
        self.correct_tags += sum(g == p for g, p in zip(gold_tags, pred_tags))
        self.gold.update(t for t, _, _ in gold)
        self.pred.update(t for t, _, _ in pred)
        self.correct.update(t for t, _, _ in set(gold) & set(pred))

    def result(self) -> dict:
        """Overall and per-type precision/recall/F1 (fractions), token accuracy, and the counts."""
        def scores(correct, gold, pred):
            return {**_prf(correct, gold, pred), "gold": gold, "pred": pred, "correct": correct}

        out = scores(self.correct.total(), self.gold.total(), self.pred.total())
        out.update(tokens=self.tokens, correct_tags=self.correct_tags,
                   accuracy=_rate(self.correct_tags, self.tokens))
        types = sorted(set(self.gold) | set(self.pred))
        out["per_type"] = {t: scores(self.correct[t], self.gold[t], self.pred[t]) for t in types}
        return out


def format_entity_report(result: dict) -> str:
    """conlleval's report, line for line, from ``EntityScorer.result()``."""
    lines = [(f"processed {result['tokens']} tokens with {result['gold']} phrases; "
              f"found: {result['pred']} phrases; correct: {result['correct']}.")]
    if result["tokens"]:
        acc = _rate(result["correct_tags"], result["tokens"], 100.0)
        lines.append(f"accuracy: {acc:6.2f}%; " + _prf_text(result))
    for name, r in result["per_type"].items():
        lines.append(f"{name:>17}: " + _prf_text(r) + f"  {r['pred']}")
    return "\n".join(lines) + "\n"


def _prf_text(r: dict) -> str:
    s = _prf(r["correct"], r["gold"], r["pred"], 100.0)
    return f"precision: {s['precision']:6.2f}%; recall: {s['recall']:6.2f}%; FB1: {s['f1']:6.2f}"


# ---------------------------------------------------------------- classifiers

class ClassifierScorer(_Counts):
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix, streamed.

    Labels (str or int) are ordered numbers first, then strings, sorted. ``labels``
    declares classes to report even if no example has them (they count in macro F1).
    """

    def __init__(self, labels: Iterable = ()):
        self.declared = {_plain(x) for x in labels}
        self.confusion = Counter()  # (gold, pred) -> examples

    def add(self, gold: Iterable, pred: Iterable) -> None:
        gold, pred = [_plain(x) for x in gold], [_plain(x) for x in pred]
        if len(gold) != len(pred):
            raise DataError(f"{len(gold)} gold labels but {len(pred)} predicted labels")
        self.confusion.update(zip(gold, pred))

    def labels(self) -> list:
        seen = {x for pair in self.confusion for x in pair}
        return sorted(self.declared | seen, key=_label_key)

    def result(self) -> dict:
        """``confusion[i][j]``: examples of ``labels[i]`` predicted as ``labels[j]``; per_class keyed by str(label)."""
        labels = self.labels()
        index = {x: i for i, x in enumerate(labels)}
        m = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for (g, p), n in self.confusion.items():
            m[index[g], index[p]] += n
        gold, pred, correct = m.sum(axis=1), m.sum(axis=0), np.diag(m)
        per_class = {str(x): {**_prf(correct[i], gold[i], pred[i]), "gold": int(gold[i]),
                              "pred": int(pred[i]), "correct": int(correct[i])} for i, x in enumerate(labels)}
        f1 = [c["f1"] for c in per_class.values()]
        return {"n": int(m.sum()), "accuracy": _rate(np.trace(m), m.sum()),
                "macro_f1": sum(f1) / len(f1) if f1 else 0.0,
                "labels": labels, "per_class": per_class, "confusion": m.tolist()}


def _plain(label):
    """numpy scalars -> Python ones, so labels hash, sort and serialise alike."""
    return label.item() if isinstance(label, np.generic) else label


def format_classifier_report(result: dict) -> str:
    """conlleval-style lines per class (last number: predictions of the class), then the confusion matrix."""
    acc = _rate(np.trace(np.asarray(result["confusion"], dtype=np.int64)), result["n"], 100.0)
    macro = 100.0 * result["macro_f1"]
    lines = [(f"processed {result['n']} examples with {len(result['labels'])} classes; "
              f"accuracy: {acc:6.2f}%; macro FB1: {macro:6.2f}")]
    for name, r in result["per_class"].items():
        lines.append(f"{name:>17}: " + _prf_text(r) + f"  {r['pred']}")
    names = [str(x) for x in result["labels"]]
    width = max([len(x) for x in names] + [len(str(n)) for row in result["confusion"] for n in row] + [4])
    lines.append("confusion (rows: gold, columns: predicted):")
    lines.append(" " * width + "".join(f"  {x:>{width}}" for x in names))
    for name, row in zip(names, result["confusion"]):
        lines.append(f"{name:>{width}}" + "".join(f"  {n:>{width}}" for n in row))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- pairs (Siamese)

def _check_pairs(similarities, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(similarities, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise DataError(f"{len(s)} similarities but {len(y)} labels")
    if not np.isfinite(s).all():
        raise DataError("similarities must be finite numbers")
    if not np.isin(y, (0, 1)).all():
        raise DataError("pair labels must be 0 or 1")
    return s, y.astype(bool)


def _pair_result(tp: int, fp: int, fn: int, tn: int, threshold: float) -> dict:
    tp, fp, fn, tn = int(tp), int(fp), int(fn), int(tn)
    n = tp + fp + fn + tn
    return {"threshold": float(threshold), "n": n, "accuracy": _rate(tp + tn, n),
            **_prf(tp, tp + fn, tp + fp), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def pair_metrics(similarities, labels, threshold: float) -> dict:
    """Accuracy, precision, recall, F1 and the confusion counts when a pair is positive iff similarity >= threshold."""
    s, y = _check_pairs(similarities, labels)
    p = s >= threshold
    return _pair_result((p & y).sum(), (p & ~y).sum(), (~p & y).sum(), (~p & ~y).sum(), threshold)


def roc_auc(similarities, labels) -> float | None:
    """Exact ROC AUC: the chance a positive outscores a negative, ties counting one half (Mann-Whitney U).

    Tied scores share their average rank; sums are kept as integers (twice the
    ranks) so the only rounding is the final division. None if a class is absent.
    """
    s, y = _check_pairs(similarities, labels)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts          # (m,) scores strictly below each distinct value
    twice_rank = 2 * below + counts + 1         # (m,) 2 * average 1-based rank of the value's ties
    rank_sum2 = int(twice_rank[inverse[y]].sum())
    return (rank_sum2 - n_pos * (n_pos + 1)) / (2 * n_pos * n_neg)


def best_threshold(similarities, labels) -> tuple[float, dict]:
    """The threshold that maximises accuracy over every distinct cut of the sorted scores, in O(n log n).

    With m distinct scores u_0 < ... < u_(m-1) there are m + 1 cuts; cut k calls
    the scores >= u_k positive. Ties on accuracy go to the higher F1, then to the
    lower threshold. Cut k is reported as the midpoint of u_(k-1) and u_k (u_0 for
    k = 0, the float just above u_(m-1) for k = m), so ``pair_metrics(s, y, tau)``
    gives the same metrics. Returns (tau, metrics at tau).
    """
    s, y = _check_pairs(similarities, labels)
    if len(s) == 0:
        raise DataError("no pairs to choose a threshold from")
    values, inverse = np.unique(s, return_inverse=True)
    m, n_pos, n_neg = len(values), int(y.sum()), int((~y).sum())
    pos_below = np.concatenate([[0], np.cumsum(np.bincount(inverse[y], minlength=m))])   # (m+1,)
    neg_below = np.concatenate([[0], np.cumsum(np.bincount(inverse[~y], minlength=m))])  # (m+1,)
    tp, fp = n_pos - pos_below, n_neg - neg_below
    fn, tn = pos_below, neg_below
    den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, den, out=np.zeros(m + 1), where=den > 0)
    k = int(np.lexsort((np.arange(m + 1), -f1, -(tp + tn)))[0])
    tau = _cut_value(values, k)
    return tau, _pair_result(tp[k], fp[k], fn[k], tn[k], tau)


def _cut_value(values: np.ndarray, k: int) -> float:
    """A threshold t with values[k-1] < t <= values[k]: the midpoint where floats allow."""
    if k == 0:
        return float(values[0])
    if k == len(values):
        return float(np.nextafter(values[-1], np.inf))
    a, b = values[k - 1], values[k]
    mid = a / 2 + b / 2  # not (a + b) / 2: that overflows for huge scores
    return float(mid if a < mid <= b else b)


class PairScorer:
    """Collects similarities and 0/1 labels; ``result()`` gives ROC AUC plus metrics at a threshold."""

    def __init__(self):
        self.similarities: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, similarities, labels) -> None:
        s, y = _check_pairs(similarities, labels)
        self.similarities.append(s)
        self.labels.append(y)

    def merge(self, other: "PairScorer") -> "PairScorer":
        self.similarities += other.similarities
        self.labels += other.labels
        return self

    def result(self, threshold: float | None = None) -> dict:
        """Metrics at ``threshold``, or at ``best_threshold`` of these pairs when None (``tuned``: true)."""
        s = np.concatenate(self.similarities) if self.similarities else np.zeros(0)
        y = np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=bool)
        out = best_threshold(s, y)[1] if threshold is None else pair_metrics(s, y, threshold)
        return {**out, "tuned": threshold is None, "auc": roc_auc(s, y)}


def format_pair_report(result: dict) -> str:
    """Two conlleval-style lines from ``PairScorer.result()`` or ``pair_metrics``."""
    auc = "n/a" if result.get("auc") is None else f"{result['auc']:.4f}"
    tuned = " (tuned on these pairs)" if result.get("tuned") else ""
    counts = {"correct": result["tp"], "gold": result["tp"] + result["fn"], "pred": result["tp"] + result["fp"]}
    acc = _rate(result["tp"] + result["tn"], result["n"], 100.0)
    return (f"processed {result['n']} pairs with {counts['gold']} positive; ROC AUC: {auc}\n"
            f"threshold: {result['threshold']:.4f}{tuned}; accuracy: {acc:6.2f}%; {_prf_text(counts)}\n")
