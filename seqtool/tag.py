"""The ``tag`` stage: a trained tagger or classifier over a stream of records.

Records are read, predicted and written a chunk at a time (``batch_size``
records), so memory stays flat however long the input is and the output
order is the input order. Every key of the input passes through; the
prediction replaces ``tags`` / ``label`` and a gold value that was there is
kept as ``gold_tags`` / ``gold_label`` (what ``seqtool eval --pred`` reads).
"""
import itertools
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from seqtool import modelio
from seqtool.charfeatures import char_matrix
from seqtool.dataset import Ragged
from seqtool.errors import UsageError
from seqtool.evaluate import TaskData, predict_labels, predict_tags
from seqtool.jsonl import STDIN, dumps
from seqtool.kernels.reference import numpy_inference
from seqtool.metrics import spans
from seqtool.readers import Source
from seqtool.stages import Report
from seqtool.tasks import build_model, reads_chars, set_weights
from seqtool.vocab import Vocab, prepare

INTERNAL_KEYS = ("ids", "tag_ids", "label_id", "q1_ids", "q2_ids")
# An input of fewer records than one batch and at most this many tokens is predicted in numpy: below
# it numba's start-up costs more than the numpy path's slower arithmetic.
SMALL_INPUT_TOKENS = 8192


class LoadedModel:
    """A model directory read back: config, vocabulary and the network with its weights."""

    def __init__(self, path: str):
        self.path = path
        self.config, weights, vocab, self.metrics = modelio.load_model(path)
        self.vocab = Vocab.from_dict(vocab, path)
        self.task = self.config["task"]
        self.model = build_model(self.config, self.config["n_vocab"], self.config["n_out"], seed=0,
                                 n_chars=len(self.vocab.chars),
                                 tag_names=self.vocab.tags.names if self.task == "tagger" else None)
        set_weights(self.model, weights)
        self.char_rows: dict = {}   # token -> its character row, shared by the chunks of a stream

    def char_column(self, token_lists) -> np.ndarray | None:
        """The character column of a chunk's tokens when the model reads characters, else None."""
        if not reads_chars(self.config):
            return None
        if len(self.char_rows) > 200_000:      # a bound: memory stays flat on endless streams
            self.char_rows.clear()
        return char_matrix(token_lists, self.vocab.chars.index, cache=self.char_rows)

    def encode(self, record: dict) -> dict:
        """Tokenize and add word ids; gold tags/labels are kept aside, never encoded (they may be unknown)."""
        rec = prepare(record)
        gold_tags, gold_label = rec.pop("tags", None), rec.pop("label", None)
        self.vocab.add_ids(rec)
        if gold_tags is not None:
            rec["gold_tags"] = gold_tags
        if gold_label is not None:
            rec["gold_label"] = gold_label
        return rec


def run_tag(model: str, input: str = STDIN, out: BinaryIO | None = None, *, format: str | None = None,
            output_format: str = "jsonl", batch_size: int = 256, threads: int | None = None,
            skip_invalid: bool = False, progress: bool | None = None) -> Report:
    """Write every record of ``input`` with the model's predictions added."""
    from seqtool.runtime import configure

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    loaded = LoadedModel(model)
    if loaded.task not in ("tagger", "classifier"):
        raise UsageError(f"{model} is a {loaded.task} model: use seqtool dedupe", model)
    if output_format == "conll" and loaded.task != "tagger":
        raise UsageError("--output-format conll is for taggers")
    out = out or sys.stdout.buffer
    src = Source(input, format, skip_invalid=skip_invalid)
    records = src.map(loaded.encode)
    n = tokens = 0

    def emit(chunk: list[dict], results: list) -> None:
        nonlocal n, tokens
        for rec in _annotate(loaded, chunk, results):
            out.write(_conll_lines(rec).encode() if output_format == "conll" else (dumps(rec) + "\n").encode())
        n += len(chunk)
        tokens += sum(len(r["tokens"]) for r in chunk)

    first = list(itertools.islice(records, batch_size))
    if len(first) < batch_size and sum(len(r["tokens"]) for r in first) <= SMALL_INPUT_TOKENS:
        # The whole input is one small chunk: predict it in numpy, never importing numba (whose
        # start-up, ~0.8 s, is most of a one-sentence run; kernels/reference.py).
        with numpy_inference():
            emit(first, _compute(loaded, _prepare(loaded, first), len(first)))
        out.flush()
        return Report(f"{n} records, {tokens} tokens tagged", [w for w in [src.reject.warning()] if w])
    configure(threads)
    # One chunk's numbers are computed on a worker thread (the kernels release the GIL) while
    # this thread reads and encodes the next chunk and writes the previous one: at most two
    # chunks are in flight, so memory stays flat, and the output keeps the input order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqtool-tag") as pool:
        pending = None
        try:
            while True:
                try:
                    chunk = first or list(itertools.islice(records, batch_size))
                    first = None
                except Exception:
                    if pending is not None:      # a bad record: what came before it is still written
                        emit(pending[0], pending[1].result())
                    raise
                if not chunk:
                    break
                results = pool.submit(_compute, loaded, _prepare(loaded, chunk), len(chunk))
                if pending is not None:
                    emit(pending[0], pending[1].result())
                pending = (chunk, results)
            if pending is not None:
                emit(pending[0], pending[1].result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    out.flush()
    return Report(f"{n} records, {tokens} tokens tagged", [w for w in [src.reject.warning()] if w])


def _predict_chunk(loaded: LoadedModel, chunk: list[dict]) -> list[dict]:
    """The records of ``chunk`` with the model's predictions added (all on this thread)."""
    return _annotate(loaded, chunk, _compute(loaded, _prepare(loaded, chunk), len(chunk)))


def _prepare(loaded: LoadedModel, chunk: list[dict]) -> TaskData:
    return TaskData(loaded.task, Ragged([r["ids"] for r in chunk]).finish(),
                    chars=loaded.char_column([r["tokens"] for r in chunk]))


def _compute(loaded: LoadedModel, data: TaskData, n: int) -> list:
    """Per record: (tag ids, their probabilities) for a tagger, class probabilities for a classifier."""
    if loaded.task == "tagger":
        return list(predict_tags(loaded.model, data, n))
    return list(predict_labels(loaded.model, data, n))


def _annotate(loaded: LoadedModel, chunk: list[dict], results: list) -> list[dict]:
    if loaded.task == "tagger":
        names = loaded.vocab.tags.names
        for rec, (pred, prob) in zip(chunk, results):
            _strip(rec)
            rec["tags"] = [names[t] for t in pred.tolist()]
            prob = prob.tolist()
            # score: the mean probability of the entity's tags (with a CRF, their forward-backward marginals)
            rec["entities"] = [{"type": typ, "start": s, "end": e, "text": " ".join(rec["tokens"][s:e]),
                                "score": round(sum(prob[s:e]) / (e - s), 4)} for typ, s, e in spans(rec["tags"])]
        return chunk
    labels = loaded.vocab.labels.names
    for rec, probs in zip(chunk, results):
        _strip(rec)
        rec["label"] = labels[int(np.argmax(probs))]
        rec["probs"] = {str(lab): round(float(p), 4) for lab, p in zip(labels, probs)}
    return chunk


def _strip(rec: dict) -> None:
    for key in INTERNAL_KEYS:
        rec.pop(key, None)


def _conll_lines(rec: dict) -> str:
    """token gold predicted per line (gold ``O`` when unknown), a blank line after the sentence."""
    gold = rec.get("gold_tags") or ["O"] * len(rec["tokens"])
    return "".join(f"{t} {g} {p}\n" for t, g, p in zip(rec["tokens"], gold, rec["tags"])) + "\n"
