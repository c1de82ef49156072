"""Batched prediction in record order, and the score a model is chosen by during training.

The ``predict_*`` generators run a model over a TaskData in fixed-size
batches, in record order; ``dev_score`` gives the number early stopping
maximises and the metrics reported with it (entity F1 for BIO taggers, as
conlleval counts it; accuracy for classifiers; accuracy at the best threshold
for Siamese pairs).
"""
import numpy as np

from seqtool.data.dataset import TaskData
from seqtool.data.metrics import ClassifierScorer, EntityScorer, PairScorer
from seqtool.errors import DataError
from seqtool.model.layers import Layer
from seqtool.model.tasks import encode, model_input, predict_logprobs, predict_tag_ids


def predict_tags(model: Layer, data: TaskData, batch_size: int = 256):
    """For each record in order: (predicted tag ids (L,), their probabilities (L,)).

    With a CRF: the Viterbi path and each tag's marginal probability."""
    for idx in data.batch_order(batch_size, None):
        b = data.batch(idx)
        best, prob = predict_tag_ids(model, model_input(model, b), b.packing)   # (N,) packed
        flat = b.packing.rows[b.packing.rows >= 0]        # packed row of each token, record by record
        best, prob = best[flat], prob[flat]
        ends = np.cumsum(b.packing.lengths).tolist()
        for start, end in zip([0] + ends[:-1], ends):
            yield best[start:end], prob[start:end]


def predict_labels(model: Layer, data: TaskData, batch_size: int = 256):
    """For each record in order: its class probabilities (K,)."""
    for idx in data.batch_order(batch_size, None):
        b = data.batch(idx)
        yield from np.exp(predict_logprobs(model, b.ids, b.packing))


def pair_similarities(model: Layer, data: TaskData, batch_size: int = 256) -> np.ndarray:
    """Cosine similarity of each pair's two questions, in record order."""
    out = []
    for idx in data.batch_order(batch_size, None):
        b = data.batch(idx)
        v1, v2 = encode(model, b.ids, b.packing), encode(model, b.ids2, b.packing2)
        out.append((v1 * v2).sum(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------- dev scores

def dev_score(model: Layer, data: TaskData, vocab, cfg: dict) -> tuple[float, dict]:
    """(score to maximise, metrics) of ``model`` on labelled ``data``."""
    if data.task == "tagger":
        names = vocab.tags.names
        scorer = EntityScorer()
        for i, (pred, _) in enumerate(predict_tags(model, data)):
            scorer.add([names[t] for t in data.tags[i]], [names[t] for t in pred])
        r = scorer.result()
        acc = r["accuracy"]
        metrics = {"f1": r["f1"], "precision": r["precision"], "recall": r["recall"], "accuracy": acc}
        return (r["f1"] if r["gold"] else acc), metrics
    if data.task == "classifier":
        scorer = ClassifierScorer()
        pred = [int(np.argmax(p)) for p in predict_labels(model, data)]
        scorer.add(data.labels.tolist(), pred)
        r = scorer.result()
        return r["accuracy"], {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}
    sims = pair_similarities(model, data)
    labelled = data.labels >= 0
    if not labelled.any():
        raise DataError("the dev pairs have no \"is_duplicate\" labels")
    scorer = PairScorer()
    scorer.add(sims[labelled], data.labels[labelled])
    r = scorer.result()
    return r["accuracy"], {k: r[k] for k in ("accuracy", "f1", "precision", "recall", "auc", "threshold")}
