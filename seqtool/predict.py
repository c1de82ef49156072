"""Inference: a model directory loaded once, and what every consumer of predictions shares.

``tag``, ``eval``, ``dedupe``, the Dask tasks and the Python API (api.py) all
predict through these functions, so they give the same bits for the same
input and batch size:

    loaded = LoadedModel("models/ner")
    for chunk in tag_chunks(loaded, map(loaded.encode, records), batch_size=256):
        ...                              # the records of a chunk, with tags/entities or label/probs
    predict_chunk(loaded, chunk)         # one chunk on this thread (data/tagged.py writes it)
    pair_chunks(loaded, tau, records)    # Siamese: similarity and is_duplicate per pair
    encode_texts(loaded, records)        # Siamese: one unit vector per text

An input shorter than one batch (and small) is predicted in plain numpy
(kernels/numpy_path.py) so that a one-sentence call never pays numba's
start-up; longer inputs run the kernels a chunk per worker thread.
"""
import collections
import gc
import itertools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np

from seqtool.data.chars import char_matrix
from seqtool.data.dataset import Ragged, TaskData, make_batch
from seqtool.data.metrics import spans
from seqtool.data.readers import is_blank, with_blanks
from seqtool.data.tokenize import token_offsets
from seqtool.data.vocab import Vocab, prepare
from seqtool.errors import DataError, UsageError
from seqtool.kernels.numpy_path import enabled as numpy_enabled
from seqtool.kernels.numpy_path import numpy_inference
from seqtool.model import modelio
from seqtool.model.inference import pair_similarities, predict_labels, predict_tags
from seqtool.model.layers import Layer
from seqtool.model.tasks import encode, load_network, reads_chars
from seqtool.model.token_cache import TokenCache
from seqtool.verbose import log, phase
from seqtool.wording import plural

INTERNAL_KEYS = ("ids", "tag_ids", "label_id", "q1_ids", "q2_ids")
# An input of fewer records than one batch and at most this many tokens is predicted in numpy: below
# it numba's start-up costs more than the numpy path's slower arithmetic.
SMALL_INPUT_TOKENS = 8192


class LoadedModel:
    """A model directory read back: config, vocabulary and the network with its weights."""

    def __init__(self, path: str):
        self.path = path
        start = time.perf_counter()
        self.config, weights, vocab, self.metrics = modelio.load_model(path)
        self.vocab = Vocab.from_dict(vocab, path)
        self.task = self.config["task"]
        self.model = load_network(self.config, weights, n_chars=len(self.vocab.chars),
                                  tag_names=self.vocab.tags.names if self.task == "tagger" else None)
        log.info("model %s: a %s, %s words, loaded in %.2f s", path, self.task, len(self.vocab.words),
                 time.perf_counter() - start)
        self.char_rows: dict = {}   # token -> its character row, shared by the chunks of a stream
        self._token_cache: TokenCache | None | bool = False   # built on first use (kernels only)

    @property
    def token_cache(self) -> "TokenCache | None":
        """Each distinct token's first-layer input product, for the kernels' path (model/token_cache.py),
        or None when the model's layout has no such layer."""
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
        if is_blank(record) and "tags" not in record and "label" not in record:
            return dict(record, tokens=[])   # a blank line of text: passed through, not predicted
        rec = prepare(record)
        gold_tags, gold_label = rec.pop("tags", None), rec.pop("label", None)
        if not isinstance(self._token_cache, TokenCache):
            self.vocab.add_ids(rec)
        if gold_tags is not None:
            rec["gold_tags"] = gold_tags
        if gold_label is not None:
            rec["gold_label"] = gold_label
        return rec


def load_siamese(path: str, threshold: float | None = None) -> tuple[LoadedModel, float]:
    """(the Siamese model at ``path``, its threshold tau: ``threshold`` when given, else the model's)."""
    loaded = LoadedModel(path)
    if loaded.task != "siamese":
        raise UsageError(f"{path} is a {loaded.task} model: dedupe needs a siamese one (train --task siamese)")
    tau = threshold if threshold is not None else loaded.config.get("threshold")
    if tau is None:
        raise UsageError(f"{path} has no threshold (it was trained without --dev): give --threshold")
    return loaded, float(tau)


# ---------------------------------------------------------------- taggers and classifiers

def tag_chunks(loaded: LoadedModel, records: Iterator[dict], batch_size: int = 256,
               threads: int | None = None) -> Iterator[list[dict]]:
    """The encoded ``records`` a chunk of ``batch_size`` at a time, in order, with predictions added.

    A first chunk shorter than a batch and of at most SMALL_INPUT_TOKENS tokens is the whole input:
    it is predicted in numpy, never importing numba. Otherwise the kernels run (``threads``: the
    kernel thread count, numba's default when None), one chunk per worker thread (``_stream``).
    """
    from seqtool.runtime import configure

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    records = iter(records)
    first = list(itertools.islice(records, batch_size))
    if not first:
        return
    if len(first) < batch_size and sum(len(r["tokens"]) for r in first) <= SMALL_INPUT_TOKENS:
        log.info("a small input (%s, under one batch): predicted in numpy, numba not needed",
                 plural(len(first), "record"))
        with phase("predict (numpy)"):
            with numpy_inference():
                chunk = annotate(loaded, first, _compute(loaded, *_prepare(loaded, first)))
        yield chunk
        return
    configure(threads)
    start = time.perf_counter()
    for n, chunk in enumerate(_stream(loaded, records, first, batch_size)):
        if n == 0:
            log.info("first chunk of %s: %.2f s (loading or compiling the kernels included)",
                     plural(len(chunk), "record"), time.perf_counter() - start)
        yield chunk


def predict_chunk(loaded: LoadedModel, chunk: list[dict]) -> list[dict]:
    """The encoded records of ``chunk`` with the model's predictions added (all on this thread)."""
    return annotate(loaded, chunk, _compute(loaded, *_prepare(loaded, chunk)))


def _stream(loaded: LoadedModel, records, first: list, batch_size: int) -> Iterator[list[dict]]:
    """Predict ``records`` a chunk at a time on worker threads, yielding chunks in input order.

    The kernels release the GIL, so each worker computes a whole chunk on one
    core (one kernel thread: no per-step synchronisation, nothing waits for a
    straggler) while this thread reads, encodes (looking tokens up in the
    token cache) and writes. There are as many workers as kernel threads and
    at most one chunk more in flight than workers, so memory stays flat. The
    first chunk runs alone: it starts numba's threading layer, which decides
    whether workers may run side by side (the workqueue layer may not be
    entered by two threads at once).
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
                    yield _done(loaded, pending.popleft())
                raise
            if not chunk:
                break
            model, data = _prepare(loaded, chunk)
            if not workers and pending:
                yield _done(loaded, pending.popleft())
                workers = threads if _concurrent_kernels_safe() else 1
                # numba's objects, alive to the end, leave the collector's view while the stream
                # runs: a full collection (the records' allocations trigger them) would walk them.
                gc.freeze()
            kernel_threads = 1 if workers > 1 else threads
            pending.append((chunk, pool.submit(_compute_with, kernel_threads, loaded, model, data)))
            while len(pending) > max(workers, 1):
                yield _done(loaded, pending.popleft())
        while pending:
            yield _done(loaded, pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sys.setswitchinterval(switch)
        gc.unfreeze()          # a longer-lived caller (seqtool run, a test) gets its collector back


def _done(loaded: LoadedModel, item) -> list[dict]:
    chunk, future = item
    return annotate(loaded, chunk, future.result())


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


def _prepare(loaded: LoadedModel, chunk: list[dict]) -> tuple[Layer, TaskData]:
    """(the model to predict with, the chunk's data for it): with the kernels and a token cache, the
    cache's predictor reading the tokens' slots; otherwise the model reading word ids (and characters)."""
    chunk = [r for r in chunk if r["tokens"]]   # records of no tokens get no prediction (annotate)
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
    if not len(data):
        return []
    if loaded.task == "tagger":
        return list(predict_tags(model, data, len(data)))
    return list(predict_labels(model, data, len(data)))


def annotate(loaded: LoadedModel, chunk: list[dict], results: list) -> list[dict]:
    """The records of ``chunk`` with their predictions (``_compute``'s results, one per record with tokens)
    written in; a blank record gets empty tags, or no label."""
    results = with_blanks(chunk, results, (np.zeros(0, int), np.zeros(0)) if loaded.task == "tagger" else None)
    if loaded.task == "tagger":
        names = loaded.vocab.tags.names
        for rec, (pred, prob) in zip(chunk, results):
            _strip(rec)
            rec["tags"] = [names[t] for t in pred.tolist()]
            rec["entities"] = _entities(rec, prob.tolist())
        return chunk
    labels = loaded.vocab.labels.names
    for rec, probs in zip(chunk, results):
        _strip(rec)
        if probs is None:
            rec["label"], rec["probs"] = None, {}
            continue
        rec["label"] = labels[int(np.argmax(probs))]
        rec["probs"] = {str(lab): round(float(p), 4) for lab, p in zip(labels, probs)}
    return chunk


def _entities(rec: dict, prob: list) -> list[dict]:
    """The entities of a tagged record; score: the mean probability of the entity's tags (with a CRF,
    their forward-backward marginals). A record made from ``text`` also gets character offsets."""
    tokens = rec["tokens"]
    offsets = token_offsets(rec["text"], tokens) if isinstance(rec.get("text"), str) else None
    out = []
    for typ, s, e in spans(rec["tags"]):
        entity = {"type": typ, "start": s, "end": e, "text": " ".join(tokens[s:e]),
                  "score": round(sum(prob[s:e]) / (e - s), 4)}
        if offsets is not None:
            entity["start_char"], entity["end_char"] = offsets[s][0], offsets[e - 1][1]
        out.append(entity)
    return out


def _strip(rec: dict) -> None:
    for key in INTERNAL_KEYS:
        rec.pop(key, None)




def predicted(loaded: LoadedModel, numbered: Iterator[tuple[int, dict]], batch_size: int):
    """(line, record with the model's predictions) for every (line, encoded record), a chunk at a time."""
    for chunk in iter(lambda: list(itertools.islice(numbered, batch_size)), []):
        yield from zip((line for line, _ in chunk), predict_chunk(loaded, [rec for _, rec in chunk]))


# ---------------------------------------------------------------- Siamese models

def encode_pair(loaded: LoadedModel, record: dict, require_gold: bool = False) -> dict:
    """A pair record tokenized and id'd for ``pair_chunks``; its ``is_duplicate`` kept as
    ``gold_is_duplicate`` (``require_gold``: a pair without one is an error)."""
    if "q1" not in record and "q1_tokens" not in record:
        raise DataError('a pair needs "q1" and "q2" (use --group for single texts)')
    rec = loaded.encode(record)
    gold = rec.pop("is_duplicate", None)
    if gold is None and require_gold:
        raise DataError('pair has no gold "is_duplicate" to score against')
    if gold is not None:
        rec["gold_is_duplicate"] = gold
    for key in ("q1_tokens", "q2_tokens"):
        if key not in record:
            rec.pop(key, None)
    return rec


def pair_chunks(loaded: LoadedModel, tau: float, pairs: Iterable[dict], batch_size: int = 256):
    """The encoded ``pairs`` (encode_pair) a chunk at a time, each with ``similarity`` (the cosine of its
    two questions' vectors, to 6 decimals) and ``is_duplicate`` (that similarity >= tau: decided on the
    printed value, so a pair printed at exactly tau is a duplicate)."""
    pairs = iter(pairs)
    for chunk in iter(lambda: list(itertools.islice(pairs, batch_size)), []):
        data = TaskData("siamese", Ragged(r.pop("q1_ids") for r in chunk).finish(), None, None,
                        Ragged(r.pop("q2_ids") for r in chunk).finish())
        for rec, s in zip(chunk, pair_similarities(loaded.model, data, batch_size)):
            rec["similarity"] = round(float(s), 6)
            rec["is_duplicate"] = rec["similarity"] >= tau
        yield chunk


def encode_text(loaded: LoadedModel, record: dict) -> dict:
    """A single-text record tokenized and id'd for ``encode_texts``."""
    enc = loaded.encode(record)
    if "ids" not in enc and enc.get("tokens") == []:
        raise DataError('the text is empty: group mode needs something to compare in every record')
    if "ids" not in enc:
        raise DataError('group mode reads one text per record ("text" or "tokens")')
    return enc


def encode_texts(loaded: LoadedModel, records: Iterable[tuple[dict, dict]], batch_size: int = 256,
                 on_record=None) -> tuple[np.ndarray, list]:
    """(N, d) float32 unit vectors of the encoded texts of ``records`` ((raw, encode_text(raw)) pairs), in
    order, and each record's ``id`` (its number when it has none); ``on_record(raw)`` sees every record."""
    records = iter(records)
    vectors, ids = [], []
    for chunk in iter(lambda: list(itertools.islice(records, batch_size)), []):
        b = make_batch(np.arange(len(chunk)), Ragged(enc["ids"] for _, enc in chunk).finish())
        vectors.append(encode(loaded.model, b.ids, b.packing).astype(np.float32))
        for raw, _ in chunk:
            ids.append(raw.get("id", len(ids)))
            if on_record is not None:
                on_record(raw)
    return (np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)), ids
