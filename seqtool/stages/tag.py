"""The ``tag`` stage: a trained tagger or classifier over a stream of records.

Records are read, predicted and written a chunk at a time (``batch_size``
records), so memory stays flat however long the input is and the output
order is the input order. Every key of the input passes through; the
prediction replaces ``tags`` / ``label`` and a gold value that was there is
kept as ``gold_tags`` / ``gold_label`` (what ``seqtool eval --pred`` reads).
"""
import collections
import gc
import itertools
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from seqtool.model import modelio
from seqtool.data.chars import char_matrix
from seqtool.data.dataset import Ragged
from seqtool.errors import UsageError
from seqtool.data.dataset import TaskData
from seqtool.model.inference import predict_labels, predict_tags
from seqtool.data.jsonl import STDIN, dumps
from seqtool.kernels.numpy_path import enabled as numpy_enabled
from seqtool.kernels.numpy_path import numpy_inference
from seqtool.model.layers import Layer
from seqtool.data.metrics import spans
from seqtool.data.readers import Source
from seqtool.stages.base import Report
from seqtool.model.tasks import load_network, reads_chars
from seqtool.model.token_cache import TokenCache
from seqtool.data.vocab import Vocab, prepare

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
        self.model = load_network(self.config, weights, n_chars=len(self.vocab.chars),
                                  tag_names=self.vocab.tags.names if self.task == "tagger" else None)
        self.char_rows: dict = {}   # token -> its character row, shared by the chunks of a stream
        self._token_cache: TokenCache | None | bool = False   # built on first use (kernels only)

    @property
    def token_cache(self) -> "TokenCache | None":
        """Each distinct token's first-layer input product, for the kernels' path (token_cache.py), or
        None when the model's layout has no such layer."""
        if self._token_cache is False:
            self._token_cache = TokenCache.build(self.model, self.vocab)
        return self._token_cache

    def char_column(self, token_lists) -> np.ndarray | None:
        """The character column of a chunk's tokens when the model reads characters, else None."""
        if not reads_chars(self.config):
            return None
        if len(self.char_rows) > 200_000:      # a bound: memory stays flat on endless streams
            self.char_rows.clear()
        return char_matrix(token_lists, self.vocab.chars.index, cache=self.char_rows)

    def encode(self, record: dict) -> dict:
        """Tokenize and add word ids (not needed, so not added, once a token cache maps the tokens); gold
        tags/labels are kept aside, never encoded (they may be unknown)."""
        rec = prepare(record)
        gold_tags, gold_label = rec.pop("tags", None), rec.pop("label", None)
        if not isinstance(self._token_cache, TokenCache):
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
        lines = _conll_lines if output_format == "conll" else _json_line
        out.write("".join([lines(rec) for rec in _annotate(loaded, chunk, results)]).encode())   # one write a chunk
        n += len(chunk)
        tokens += sum(len(r["tokens"]) for r in chunk)

    first = list(itertools.islice(records, batch_size))
    if len(first) < batch_size and sum(len(r["tokens"]) for r in first) <= SMALL_INPUT_TOKENS:
        # The whole input is one small chunk: predict it in numpy, never importing numba (whose
        # start-up, ~0.8 s, is most of a one-sentence run; kernels/reference.py).
        with numpy_inference():
            emit(first, _compute(loaded, *_prepare(loaded, first)))
        out.flush()
        return Report(f"{n} records, {tokens} tokens tagged", [w for w in [src.reject.warning()] if w])
    configure(threads)
    _stream(loaded, records, first, batch_size, emit)
    out.flush()
    return Report(f"{n} records, {tokens} tokens tagged", [w for w in [src.reject.warning()] if w])


def _stream(loaded: LoadedModel, records, first: list, batch_size: int, emit) -> None:
    """Predict ``records`` a chunk at a time on worker threads, emitting chunks in input order.

    The kernels release the GIL, so each worker computes a whole chunk on one
    core (one kernel thread: no per-step synchronisation, nothing waits for a
    straggler) while this thread reads, encodes (looking tokens up in the
    token cache, token_cache.py) and writes. There are as many
    workers as kernel threads (--threads) and at most one chunk more in
    flight than workers, so memory stays flat. The first chunk runs alone: it
    starts numba's threading layer, which decides whether workers may run side
    by side (the workqueue layer may not be entered by two threads at once).
    """
    import numba

    from seqtool.kernels import load_lazy

    load_lazy()                                  # before any second thread runs kernels
    threads = numba.get_num_threads()
    switch = sys.getswitchinterval()
    # A worker coming back from a kernel needs the GIL for the next few numpy calls; at the default
    # 5 ms interval it waits that long behind this thread's JSON work, at 1 ms the cores stay busy.
    sys.setswitchinterval(min(switch, 0.001))
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="seqtool-tag")
    pending: collections.deque = collections.deque()
    workers = 0                                  # decided once the first chunk is done
    try:
        while True:
            try:
                chunk = first or list(itertools.islice(records, batch_size))
                first = None
            except Exception:
                while pending:                   # a bad record: what came before it is still written
                    emit(*_done(pending.popleft()))
                raise
            if not chunk:
                break
            model, data = _prepare(loaded, chunk)
            if not workers and pending:
                emit(*_done(pending.popleft()))
                workers = threads if _concurrent_kernels_safe() else 1
                # numba's objects, alive to the end, leave the collector's view while the stream
                # runs: a full collection (the records' allocations trigger them) would walk them.
                gc.freeze()
            kernel_threads = 1 if workers > 1 else threads
            pending.append((chunk, pool.submit(_compute_with, kernel_threads, loaded, model, data)))
            while len(pending) > max(workers, 1):
                emit(*_done(pending.popleft()))
        while pending:
            emit(*_done(pending.popleft()))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sys.setswitchinterval(switch)
        gc.unfreeze()          # a longer-lived caller (seqtool run, a test) gets its collector back


def _done(item) -> tuple[list, list]:
    chunk, future = item
    return chunk, future.result()


def _compute_with(kernel_threads: int, loaded: LoadedModel, model: Layer, data: TaskData) -> list:
    import numba

    numba.set_num_threads(kernel_threads)   # per thread: this worker's kernels
    return _compute(loaded, model, data)


def _concurrent_kernels_safe() -> bool:
    """Whether two threads may run parallel kernels at once: numba's threading layer is started (by
    the first chunk) and is not workqueue."""
    import numba

    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:                       # not started yet
        return False


def _predict_chunk(loaded: LoadedModel, chunk: list[dict]) -> list[dict]:
    """The records of ``chunk`` with the model's predictions added (all on this thread)."""
    return _annotate(loaded, chunk, _compute(loaded, *_prepare(loaded, chunk)))


def _prepare(loaded: LoadedModel, chunk: list[dict]) -> tuple[Layer, TaskData]:
    """(the model to predict with, the chunk's data for it): with the kernels and a token cache, the
    cache's predictor reading the tokens' slots; otherwise the model reading word ids (and characters)."""
    cache = None if numpy_enabled() else loaded.token_cache
    if cache is not None:
        token_lists = [r["tokens"] for r in chunk]
        model, slots = cache.lookup(token_lists)
        return model, TaskData(loaded.task, Ragged.from_flat(slots, [len(t) for t in token_lists]))
    ids = [r["ids"] if "ids" in r else loaded.vocab.add_ids(r)["ids"] for r in chunk]   # (encoded while cached)
    return loaded.model, TaskData(loaded.task, Ragged(ids).finish(),
                                  chars=loaded.char_column([r["tokens"] for r in chunk]))


def _compute(loaded: LoadedModel, model: Layer, data: TaskData) -> list:
    """Per record: (tag ids, their probabilities) for a tagger, class probabilities for a classifier."""
    if loaded.task == "tagger":
        return list(predict_tags(model, data, len(data)))
    return list(predict_labels(model, data, len(data)))


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


def _json_line(rec: dict) -> str:
    return dumps(rec) + "\n"


def _conll_lines(rec: dict) -> str:
    """token gold predicted per line (gold ``O`` when unknown), a blank line after the sentence."""
    gold = rec.get("gold_tags") or ["O"] * len(rec["tokens"])
    return "".join(f"{t} {g} {p}\n" for t, g, p in zip(rec["tokens"], gold, rec["tags"])) + "\n"
