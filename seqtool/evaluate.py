"""Task data in memory, batched prediction, and the scores a model is chosen by.

``collect`` turns id'd records into a TaskData (compact arrays); the
``predict_*`` generators run a model over it in fixed-size batches, in record
order; ``dev_score`` gives the number early stopping maximises and the
metrics reported with it (entity F1 for BIO taggers, as conlleval counts it;
accuracy for classifiers; accuracy at the best threshold for Siamese pairs).
"""
from dataclasses import dataclass

import numpy as np

from seqtool.charfeatures import char_matrix
from seqtool.dataset import Batch, Ragged, length_bucketed_order, make_batch
from seqtool.errors import DataError
from seqtool.layers import Layer
from seqtool.metrics import ClassifierScorer, EntityScorer, PairScorer
from seqtool.tasks import encode, model_input, predict_logprobs, predict_tag_ids


@dataclass
class TaskData:
    task: str
    tokens: Ragged                      # ids (q1 ids for pairs)
    tags: Ragged | None = None          # tag ids (taggers)
    labels: np.ndarray | None = None    # label ids (classifiers) or is_duplicate (pairs)
    tokens2: Ragged | None = None       # q2 ids (pairs)
    chars: np.ndarray | None = None     # (len(tokens.flat), 1 + W) shape + character ids per token (--char)

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, idx: np.ndarray) -> Batch:
        return make_batch(idx, self.tokens, self.tags, self.labels, self.tokens2, self.chars)

    def batch_order(self, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Index arrays of one epoch's batches (in input order when rng is None)."""
        if self.task == "siamese":
            from seqtool.siamese import duplicate_batches

            return duplicate_batches(self, batch_size, rng)
        lengths = self.tokens.lengths
        if rng is None:
            return [np.arange(s, min(s + batch_size, len(self))) for s in range(0, len(self), batch_size)]
        return length_bucketed_order(lengths, batch_size, rng)


def _cut(record: dict, ids_key: str, length_key: str) -> list:
    """The real ids of a record, padding dropped when it came through ``seqtool pad``."""
    ids = record[ids_key]
    n = record.get(length_key)
    return ids if n is None else ids[:n]


def collect(records, task: str, name: str = "<input>", char_index: dict | None = None) -> TaskData:
    """TaskData from records that carry ids (vocab.encode output or ``seqtool pad`` lines).

    With ``char_index`` (a Vocab's ``chars.index``) the records' ``tokens`` also
    become the character column (charfeatures.char_matrix).
    """
    tokens, tags, labels, tokens2 = Ragged(), Ragged() if task == "tagger" else None, [], None
    words = [] if char_index is not None else None
    if task == "siamese":
        tokens2 = Ragged()
    for n, r in enumerate(records, 1):
        if task == "siamese":
            if "q1_ids" not in r:
                raise DataError(f"record {n} is not a pair (needs \"q1\" and \"q2\")", name)
            tokens.append(_cut(r, "q1_ids", "q1_length"))
            tokens2.append(_cut(r, "q2_ids", "q2_length"))
            labels.append(int(r.get("is_duplicate", -1)))
            continue
        if "ids" not in r:
            raise DataError(f"record {n} has no tokens (needs \"tokens\" or \"text\")", name)
        tokens.append(_cut(r, "ids", "length"))
        if words is not None:
            words.append(_words(r, n, name))
        if task == "tagger":
            if "tag_ids" not in r:
                raise DataError(f"record {n} has no \"tags\": every training record of a tagger needs them", name)
            tags.append(_cut(r, "tag_ids", "length"))
        elif task == "classifier":
            if "label_id" not in r:
                raise DataError(f"record {n} has no \"label\": every training record of a classifier needs one",
                                name)
            labels.append(r["label_id"])
    return TaskData(task, tokens.finish(), tags.finish() if tags is not None else None,
                    np.asarray(labels, np.int64) if task != "tagger" else None,
                    tokens2.finish() if tokens2 is not None else None,
                    char_matrix(words, char_index) if words is not None else None)


def _words(record: dict, n: int, name: str) -> list:
    """The token strings of a record, as many as its ids (for the character column)."""
    words = record.get("tokens")
    size = len(_cut(record, "ids", "length"))
    if words is None or len(words) < size:
        raise DataError(f"record {n} has no \"tokens\" to read characters from", name)
    return words[:size]


# ---------------------------------------------------------------- batched prediction, record order

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
