"""The public Python API: what the commands do, for a Python caller, with the same results bit for bit.

    import seqtool
    ner = seqtool.load("models/ner")
    ner.tag(["John lives in Paris"])       # [{"text": ..., "tokens": [...], "tags": [...], "entities": [...]}]
    seqtool.load("models/sentiment").classify(["not happy :("])
    quora = seqtool.load("models/quora")
    quora.similarity("How do I learn Python?", "What is the best way to learn Python?")
    quora.encode(["a question", "another"])  # (2, d) unit vectors
    quora.group(["a question", "the same question", "another"])  # each with group, duplicate_of, score
    quora.neighbours(["a question", "the same question", "another"], k=1)
    seqtool.train("train.jsonl", output="models/ner", dev="dev.jsonl", epochs=5)

``tag``/``classify`` go through seqtool/predict.py's ``tag_chunks`` (what
``seqtool tag`` runs), Siamese calls through its pair and text encoders (what
``seqtool dedupe`` runs), and ``train`` is ``seqtool train``'s stage function.
Bad input raises ``seqtool.errors.SeqtoolError`` (a DataError names the item).
"""
from typing import Iterable

import numpy as np

from seqtool.errors import DataError, SeqtoolError, UsageError
from seqtool.predict import LoadedModel, encode_pair, encode_text, encode_texts, pair_chunks, tag_chunks

Item = str | list | dict


class Model:
    """A trained model directory, loaded once (``seqtool.load``)."""

    def __init__(self, path: str, threads: int | None = None, batch_size: int = 256):
        self._loaded = LoadedModel(path)
        self.path, self.threads, self.batch_size = path, threads, batch_size

    @property
    def task(self) -> str:
        """"tagger", "classifier" or "siamese"."""
        return self._loaded.task

    @property
    def config(self) -> dict:
        """The options the model was trained with (config.json)."""
        return dict(self._loaded.config)

    @property
    def threshold(self) -> float | None:
        """A Siamese model's duplicate threshold tau (None for other tasks or when it has none)."""
        return self._loaded.config.get("threshold")

    def __repr__(self) -> str:
        return f"<seqtool.Model {self.task} from {self.path!r}>"

    # ------------------------------------------------------------ taggers and classifiers

    def tag(self, items: Iterable[Item]) -> list[dict]:
        """Each item with the model's predictions, as ``seqtool tag`` writes it.

        An item is a text (``"John lives in Paris"``), a list of tokens, or a record
        (``{"text": ...}``, ``{"tokens": [...]}``, with any other keys kept).
        Taggers add ``tags`` and ``entities`` (with ``start_char``/``end_char`` for
        a text); classifiers add ``label`` and ``probs``.
        """
        self._require("tagger", "classifier", verb="tag")
        encoded = [_encoded(self._loaded.encode, item, n) for n, item in enumerate(_several(items, "tag"))]
        out: list[dict] = []
        for chunk in tag_chunks(self._loaded, encoded, self.batch_size, self.threads):
            out.extend(chunk)
        return out

    def classify(self, items: Iterable[Item]) -> list[dict]:
        """``tag`` for a classifier: each item with ``label`` and ``probs``."""
        self._require("classifier", verb="classify")
        return self.tag(_several(items, "classify"))

    # ------------------------------------------------------------ Siamese models

    def similarity(self, q1: str | list, q2: str | list) -> float | list[float]:
        """The cosine similarity of two texts (a float), or of two equally long lists of texts (a list)."""
        self._require("siamese", verb="similarity")
        single = isinstance(q1, str) and isinstance(q2, str)
        first, second = ([q1], [q2]) if single else (list(q1), list(q2))
        if len(first) != len(second):
            raise UsageError(f"similarity needs as many q2 as q1 texts ({len(first)} against {len(second)})")
        pairs = [_encoded(lambda r: encode_pair(self._loaded, r), {"q1": a, "q2": b}, n)
                 for n, (a, b) in enumerate(zip(first, second))]
        sims = [rec["similarity"] for chunk in pair_chunks(self._loaded, self.threshold or 0.0, pairs,
                                                            self.batch_size) for rec in chunk]
        return sims[0] if single else sims

    def is_duplicate(self, q1: str, q2: str, threshold: float | None = None) -> bool:
        """Whether two texts are duplicates: their similarity >= tau (``threshold`` or the model's)."""
        return self.similarity(q1, q2) >= self._tau(threshold)

    def encode(self, texts: Iterable[str | list]) -> np.ndarray:
        """(N, d) float32 unit vectors of the texts, as ``seqtool dedupe --group`` compares them."""
        self._require("siamese", verb="encode")
        return self._encode_records(texts, "encode")[1]

    def group(self, items: Iterable[Item], threshold: float | None = None) -> list[dict]:
        """Each item as a record with ``group``, ``duplicate_of`` and ``score``, as ``seqtool dedupe --group``
        writes it: every member is a duplicate (similarity >= tau: ``threshold`` or the model's) of its
        group's representative, the record whose number ``group`` is; ``duplicate_of`` is that record's
        ``id``, or its number when it has none."""
        from seqtool.model.grouping import find_groups, group_fields   # numba: only when grouping

        self._require("siamese", verb="group")
        tau = self._tau(threshold)
        records, vectors, ids = self._encode_records(items, "group")
        rep, sim = find_groups(vectors, tau)
        return [dict(record, **group_fields(rep, sim, ids, i)) for i, record in enumerate(records)]

    def neighbours(self, items: Iterable[Item], k: int) -> list[dict]:
        """Each item as a record with ``neighbours``: its ``k`` most similar other items, best first, each
        ``{"index", "id", "similarity"}``, as ``seqtool dedupe --top-k k`` writes it."""
        from seqtool.model.grouping import nearest, neighbour_fields   # numba: only when searching

        self._require("siamese", verb="neighbours")
        if k < 1:
            raise UsageError(f"neighbours needs k >= 1, not {k}")
        records, vectors, ids = self._encode_records(items, "neighbours")
        found = nearest(vectors, min(k, len(records) - 1))
        return [dict(record, neighbours=neighbour_fields(found[i], ids)) for i, record in enumerate(records)]

    def _encode_records(self, items: Iterable[Item], verb: str) -> tuple[list[dict], np.ndarray, list]:
        """(the items as records, their (N, d) unit vectors, their ids or numbers), as dedupe encodes them."""
        records = [_record(item) for item in _several(items, verb)]
        encoded = [(record, _encoded(lambda r: encode_text(self._loaded, r), record, n))
                   for n, record in enumerate(records)]
        vectors, ids = encode_texts(self._loaded, encoded, self.batch_size)
        return records, vectors, ids

    def _tau(self, threshold: float | None) -> float:
        """The duplicate threshold: ``threshold`` when given, else the model's."""
        tau = threshold if threshold is not None else self.threshold
        if tau is None:
            raise UsageError(f"{self.path} has no threshold (it was trained without a dev set): give threshold=")
        return tau

    def _require(self, *tasks: str, verb: str) -> None:
        if self.task not in tasks:
            raise UsageError(f"{self.path} is a {self.task} model: {verb}() is for {' or '.join(tasks)} models")


def _several(items: Iterable[Item], verb: str) -> Iterable[Item]:
    """``items``, refusing one text given where a list of them belongs (it would be read as its characters)."""
    if isinstance(items, (str, dict)):
        raise UsageError(f"{verb}() takes a list of items, not one {type(items).__name__}: give [item]")
    return items


def _record(item: Item) -> dict:
    """An API item as a record: a text, a token list, or a record (copied, so the caller's is untouched)."""
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, dict):
        return dict(item)
    if isinstance(item, (list, tuple)):
        return {"tokens": list(item)}
    raise DataError(f"expected a text, a list of tokens or a record, got {type(item).__name__}")


def _encoded(encode, item: Item, n: int) -> dict:
    """``encode(record)`` of the API's item ``n``; a DataError names the item."""
    try:
        return encode(item if isinstance(item, dict) else _record(item))
    except DataError as e:
        raise DataError(f"item {n}: {e.message}") from None


def load(path: str, *, threads: int | None = None, batch_size: int = 256) -> Model:
    """The model saved at ``path`` by ``seqtool train`` (or ``seqtool.train``)."""
    return Model(path, threads=threads, batch_size=batch_size)


def train(train: str, *, output: str, task: str | None = None, dev: str | None = None, **options) -> dict:
    """Train a model as ``seqtool train`` does (same options, by their Python names: ``hidden=64``,
    ``epochs=5``, ``crf=False``) and save it at ``output``; returns the summary ``seqtool train`` prints."""
    from seqtool.stages.train import run_train

    options.setdefault("progress", False)
    summary, _ = run_train(train, output=output, task=task, dev=dev, **options)
    return summary


__all__ = ["Model", "SeqtoolError", "load", "train"]
